/**
 * `${{ expr }}` templates: finding the interpolations, rendering them with
 * contextual escaping (escape.ts), and the static checks `firebreak validate`
 * runs on them (secrets whole only, where unescaped() is used, interpolations
 * no value could make safe).
 */
import { checkExpression, compile, evaluateCompiled, ExpressionError, UNESCAPED_FUNCTION, type Compiled } from './cel.js';
import { createEscaper, EscapeError, escapeMrkdwnDeep, type TemplateContext } from './escape.js';

interface Segment {
  start: number;
  end: number;
  expr: string;
}

// Templates come from playbooks, so few distinct ones: their segments are found once.
const SEGMENTS_MAX = 10_000;
const segmentCache = new Map<string, Segment[]>();

/** `segments`, remembered per template text (a template with an error is not cached: it throws). */
function segments(template: string): Segment[] {
  let found = segmentCache.get(template);
  if (!found) {
    found = findSegments(template);
    if (segmentCache.size >= SEGMENTS_MAX) segmentCache.clear();
    segmentCache.set(template, found);
  }
  return found;
}

/**
 * Find `${{ ... }}` segments. A CEL map literal may contain `}}`, so the segment
 * ends at the first `}}` whose inner text parses; if none does, at the first `}}`
 * (and the parse error surfaces from there).
 */
function findSegments(template: string): Segment[] {
  const out: Segment[] = [];
  let from = 0;
  for (;;) {
    const start = template.indexOf('${{', from);
    if (start < 0) return out;
    let close = template.indexOf('}}', start + 3);
    if (close < 0) throw new ExpressionError(template.slice(start), 'unterminated "${{" (missing "}}")');
    const first = close;
    while (close >= 0 && typeof compile(template.slice(start + 3, close).trim()) === 'string') close = template.indexOf('}}', close + 1);
    if (close < 0) close = first;
    out.push({ start, end: close + 2, expr: template.slice(start + 3, close).trim() });
    from = close + 2;
  }
}

/** Every expression inside a template's `${{ }}`, or the template error as a message. */
export function templateExpressions(template: string): { expressions: string[]; error?: string } {
  try {
    return { expressions: segments(template).map((s) => s.expr) };
  } catch (e) {
    return { expressions: [], error: e instanceof ExpressionError ? e.reason : String(e) };
  }
}

function compiled(expr: string): Compiled {
  const c = compile(expr);
  if (typeof c === 'string') throw new ExpressionError(expr, c);
  return c;
}

/** One interpolation's value, and whether the playbook opted out of escaping it. */
function evaluateSegment(expr: string, vars: Record<string, unknown>): { value: unknown; unescaped: boolean } {
  const c = compiled(expr);
  if (c.unescaped !== undefined && !c.nestedUnescaped) return { value: evaluateCompiled(c.unescaped, compiled(c.unescaped), vars), unescaped: true };
  return { value: evaluateCompiled(expr, c, vars), unescaped: false };
}

function escapeFailure(expr: string, context: TemplateContext, err: unknown): never {
  if (err instanceof EscapeError) throw new ExpressionError(expr, `in this ${context} field: ${err.message}`);
  throw err;
}

/** Replace every `${{ expr }}` in a string with its value, escaped for `context` (plain: as is). */
export function interpolate(template: string, vars: Record<string, unknown>, context: TemplateContext = 'plain'): string {
  return interpolateSegments(template, segments(template), vars, context);
}

function interpolateSegments(template: string, segs: readonly Segment[], vars: Record<string, unknown>, context: TemplateContext): string {
  const escaper = createEscaper(context);
  let out = '';
  let last = 0;
  for (const s of segs) {
    const text = template.slice(last, s.start);
    escaper.literal(text);
    out += text;
    const { value, unescaped } = evaluateSegment(s.expr, vars);
    try {
      if (unescaped) {
        const raw = typeof value === 'string' ? value : value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
        escaper.unescaped(raw);
        out += raw;
      } else {
        out += escaper.value(value);
      }
    } catch (err) {
      escapeFailure(s.expr, context, err);
    }
    last = s.end;
  }
  const tail = template.slice(last);
  escaper.literal(tail);
  out += tail;
  try {
    escaper.finish(out);
  } catch (err) {
    escapeFailure(template, context, err);
  }
  return out;
}

/** Which escaping applies to a string at a path inside a `with:` block. */
export type ContextOf = (path: readonly (string | number)[]) => TemplateContext;

const allPlain: ContextOf = () => 'plain';

/**
 * Render a `with:` block: walks objects/arrays; a string that is exactly one
 * `${{ expr }}` keeps the value's type (number, bool, list...) in a plain
 * field, others interpolate. `contextOf` says how each field is escaped.
 */
export function renderValue(value: unknown, vars: Record<string, unknown>, contextOf: ContextOf = allPlain): unknown {
  return renderAt(value, vars, contextOf, []);
}

/** `path` is one array pushed and popped on the way down; contextOf reads it only for templates. */
function renderAt(value: unknown, vars: Record<string, unknown>, contextOf: ContextOf, path: (string | number)[]): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${{')) return value;
    const context = contextOf(path);
    const segs = segments(value);
    const only = segs[0];
    if (segs.length === 1 && only && only.start === 0 && only.end === value.length) {
      const { value: v, unescaped } = evaluateSegment(only.expr, vars);
      if (unescaped || context === 'plain') return v;
      // A whole value keeps its type in Slack text (structures get their strings escaped);
      // elsewhere it becomes text escaped for where it starts.
      if (context === 'mrkdwn' && typeof v !== 'string') return typeof v === 'object' && v !== null ? escapeMrkdwnDeep(v) : v;
      const escaper = createEscaper(context);
      try {
        const out = escaper.value(v);
        escaper.finish(out);
        return out;
      } catch (err) {
        escapeFailure(only.expr, context, err);
      }
    }
    return interpolateSegments(value, segs, vars, context);
  }
  if (Array.isArray(value)) {
    return value.map((v, i) => {
      path.push(i);
      const out = renderAt(v, vars, contextOf, path);
      path.pop();
      return out;
    });
  }
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      path.push(k);
      out[k] = renderAt(v, vars, contextOf, path);
      path.pop();
    }
    return out;
  }
  return value;
}

/** What validate says about a template: errors fail it, warnings are printed. */
export interface TemplateReport {
  errors: string[];
  warnings: string[];
}

/**
 * Static checks of one template: each expression (names, secrets whole only,
 * unescaped() placement), and interpolations that no value could make safe in
 * their context (a URL that starts with `${{ }}`, a PromQL raw string). Runs the
 * escaper with stand-in values, so validate and rendering agree on positions.
 */
export function checkTemplateIn(template: string, context: TemplateContext, opts: { names?: readonly string[]; allowSecret?: boolean } = {}): TemplateReport {
  const report: TemplateReport = { errors: [], warnings: [] };
  let segs: Segment[];
  try {
    segs = segments(template);
  } catch (e) {
    report.errors.push(e instanceof ExpressionError ? e.reason : String(e));
    return report;
  }
  const escaper = createEscaper(context);
  let last = 0;
  for (const s of segs) {
    escaper.literal(template.slice(last, s.start));
    last = s.end;
    const problem = checkExpression(s.expr, opts);
    if (problem) {
      report.errors.push(`\${{ ${s.expr} }}: ${problem}`);
      continue;
    }
    const c = compiled(s.expr);
    if (c.unescaped !== undefined) {
      if (context !== 'plain') {
        report.warnings.push(`\${{ ${s.expr} }}: ${UNESCAPED_FUNCTION}() turns off ${context} escaping: whatever this value holds changes the ${describe(context)}`);
      }
      escaper.unescaped('x');
      continue;
    }
    try {
      // A stand-in every position accepts: a word, or a number in queries (valid inside and outside strings).
      escaper.value(context === 'promql' || context === 'cel' ? 1 : 'x');
    } catch (err) {
      if (err instanceof EscapeError) report.errors.push(`\${{ ${s.expr} }}: ${err.message}`);
      else throw err;
    }
  }
  return report;
}

function describe(context: TemplateContext): string {
  switch (context) {
    case 'url':
      return 'request URL (path, query, host)';
    case 'promql':
      return 'PromQL query';
    case 'cel':
      return 'condition';
    case 'mrkdwn':
      return 'Slack message (links, mentions, @channel)';
    default:
      return 'text';
  }
}
