/**
 * The sandboxed expression language of playbooks: CEL through @bufbuild/cel.
 * `${{ expr }}` interpolates into strings, `when:` evaluates a bool. No eval,
 * no home-made parser: every expression goes through the CEL parser/planner.
 */
import {
  CelScalar,
  celFunc,
  celEnv,
  isCelError,
  isCelList,
  isCelMap,
  isCelType,
  isCelUint,
  parse,
  plan,
  unparse,
  type CelError,
  type CelInput,
  type CelResult,
} from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import { FirebreakError } from '../errors.js';

/** The names playbook expressions can see. */
export const PLAYBOOK_NAMES = ['alert', 'steps', 'run', 'secrets'] as const;

/** An expression failed to parse or evaluate; carries the expression text. */
export class ExpressionError extends FirebreakError {
  readonly code = 'expression_failed';
  constructor(
    readonly expression: string,
    readonly reason: string,
  ) {
    super(`expression \`${expression}\`: ${reason}`);
  }
}

type Expr = ReturnType<typeof parse>['expr'];
type Program = (vars: Record<string, CelInput>) => CelResult;
interface Compiled {
  ast: Expr;
  program: Program;
}

const { INT, DOUBLE } = CelScalar;
// JS numbers arrive as CEL doubles. Comparisons with int literals already work
// (`value > 0`), but standard CEL has no mixed arithmetic, so `value * 100` would
// fail on a number that came from JSON. These overloads promote the int side.
const arith: Array<[string, (a: number, b: number) => number]> = [
  ['_+_', (a, b) => a + b],
  ['_-_', (a, b) => a - b],
  ['_*_', (a, b) => a * b],
  ['_/_', (a, b) => a / b],
];
const mixedArith = arith.flatMap(([op, f]) => [
  celFunc(op, [DOUBLE, INT], DOUBLE, (a, b) => f(a, Number(b))),
  celFunc(op, [INT, DOUBLE], DOUBLE, (a, b) => f(Number(a), b)),
]);

const env = celEnv({ funcs: [...strings, ...mixedArith] });

// Programs are cached by text; the cap only guards against unbounded growth if
// expressions ever come from somewhere other than playbooks.
const CACHE_MAX = 10_000;
const cache = new Map<string, Compiled | string>();

function compile(expr: string): Compiled | string {
  const hit = cache.get(expr);
  if (hit !== undefined) return hit;
  let entry: Compiled | string;
  try {
    const parsed = parse(expr);
    entry = { ast: parsed.expr, program: plan(env, parsed) as Program };
  } catch (e) {
    entry = syntaxMessage(e instanceof Error ? e.message : String(e));
  }
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(expr, entry);
  return entry;
}

function syntaxMessage(raw: string): string {
  const m = /^<input>:(\d+):(\d+): ([\s\S]*)$/.exec(raw);
  return m ? `syntax error at ${m[1]}:${m[2]}: ${m[3]}` : `syntax error: ${raw}`;
}

// CEL-builtin type identifiers (`type(x) == int`) that are not variables.
const TYPE_NAMES = new Set(['int', 'uint', 'double', 'bool', 'string', 'bytes', 'list', 'map', 'null_type', 'type', 'dyn']);

/** Visit every node, tracking comprehension variables so `x` in `l.all(x, ...)` is not a free name. */
function walk(node: Expr | undefined, visit: (n: Expr, bound: ReadonlySet<string>) => void, bound: ReadonlySet<string> = new Set()): void {
  if (!node) return;
  visit(node, bound);
  const k = node.exprKind;
  switch (k.case) {
    case 'selectExpr':
      walk(k.value.operand, visit, bound);
      break;
    case 'callExpr':
      walk(k.value.target, visit, bound);
      for (const a of k.value.args) walk(a, visit, bound);
      break;
    case 'listExpr':
      for (const e of k.value.elements) walk(e, visit, bound);
      break;
    case 'structExpr':
      for (const e of k.value.entries) {
        if (e.keyKind.case === 'mapKey') walk(e.keyKind.value, visit, bound);
        walk(e.value, visit, bound);
      }
      break;
    case 'comprehensionExpr': {
      const c = k.value;
      walk(c.iterRange, visit, bound);
      walk(c.accuInit, visit, bound);
      const inner = new Set([...bound, c.iterVar, c.iterVar2, c.accuVar].filter(Boolean));
      walk(c.loopCondition, visit, inner);
      walk(c.loopStep, visit, inner);
      walk(c.result, visit, inner);
      break;
    }
    default:
      break;
  }
}

/** Parse error (or unknown top-level name when `names` is given) as a message; undefined when fine. */
export function checkExpression(expr: string, opts: { names?: readonly string[] } = {}): string | undefined {
  const c = compile(expr);
  if (typeof c === 'string') return c;
  if (!opts.names) return undefined;
  const allowed = new Set(opts.names);
  let problem: string | undefined;
  walk(c.ast, (n, bound) => {
    if (problem || n.exprKind.case !== 'identExpr') return;
    const name = n.exprKind.value.name;
    if (!allowed.has(name) && !bound.has(name) && !TYPE_NAMES.has(name)) {
      problem = `unknown name "${name}" (available: ${opts.names!.join(', ')})`;
    }
  });
  return problem;
}

/** Step ids an expression reads through `steps.<id>` or `steps["<id>"]` (for the loader's order check). */
export function referencedSteps(expr: string): string[] {
  const c = compile(expr);
  if (typeof c === 'string') return [];
  const ids = new Set<string>();
  const isSteps = (e: Expr | undefined, bound: ReadonlySet<string>): boolean =>
    e?.exprKind.case === 'identExpr' && e.exprKind.value.name === 'steps' && !bound.has('steps');
  walk(c.ast, (n, bound) => {
    const k = n.exprKind;
    if (k.case === 'selectExpr' && isSteps(k.value.operand, bound)) ids.add(k.value.field);
    if (k.case === 'callExpr' && k.value.function === '_[_]' && isSteps(k.value.args[0], bound)) {
      const key = k.value.args[1]?.exprKind;
      if (key?.case === 'constExpr' && key.value.constantKind.case === 'stringValue') ids.add(key.value.constantKind.value);
    }
  });
  return [...ids];
}

/** Turn CEL's "field not found: x" into which object lacked which key. */
function describeError(ast: Expr, err: CelError): string {
  const missing = /^field not found: (.*)$/.exec(err.message)?.[1];
  if (missing !== undefined) {
    let where: string | undefined;
    walk(ast, (n) => {
      if (where) return;
      const k = n.exprKind;
      if (k.case === 'selectExpr' && k.value.field === missing && k.value.operand) where = unparse(k.value.operand);
      if (k.case === 'callExpr' && k.value.function === '_[_]' && k.value.args[0]) {
        const key = k.value.args[1]?.exprKind;
        if (key?.case === 'constExpr' && key.value.constantKind.value === missing) where = unparse(k.value.args[0]);
      }
    });
    return where ? `no key "${missing}" in ${where}` : `no key "${missing}"`;
  }
  if (err.message === 'unresolved attribute') {
    const ids: string[] = [];
    walk(ast, (n, bound) => {
      if (n.exprKind.case === 'identExpr' && n.id === err.exprId && !bound.has(n.exprKind.value.name)) ids.push(n.exprKind.value.name);
    });
    return ids[0] ? `unknown name "${ids[0]}"` : 'unknown name';
  }
  return err.message;
}

/** CEL values back to plain JSON-able JS: ints to numbers, lists/maps to arrays/objects. */
function toJs(v: unknown): unknown {
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (isCelUint(v)) return toJs(v.value);
  if (isCelList(v)) return [...v].map(toJs);
  if (isCelMap(v)) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of v) o[String(isCelUint(k) ? k.value : k)] = toJs(val);
    return o;
  }
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (isCelType(v)) return v.name;
  if (typeof v === 'object' && v !== null && 'message' in v) {
    // Timestamps and durations come back as protobuf reflect messages.
    const msg = (v as { message: { $typeName?: string; seconds?: bigint; nanos?: number } }).message;
    const ms = Number(msg.seconds ?? 0n) * 1000 + (msg.nanos ?? 0) / 1e6;
    if (msg.$typeName === 'google.protobuf.Timestamp') return new Date(ms).toISOString();
    if (msg.$typeName === 'google.protobuf.Duration') return `${ms / 1000}s`;
  }
  return v;
}

/** Evaluate to a plain JS value (ints as numbers). Throws ExpressionError. */
export function evaluateExpression(expr: string, vars: Record<string, unknown>): unknown {
  const c = compile(expr);
  if (typeof c === 'string') throw new ExpressionError(expr, c);
  // Plain objects/arrays/numbers/strings are valid CEL input as they are (maps, lists, doubles).
  const result = c.program(vars as Record<string, CelInput>);
  if (isCelError(result)) throw new ExpressionError(expr, describeError(c.ast, result));
  return toJs(result);
}

/** Evaluate a `when:`; anything but a bool is an error rather than truthiness, so typos fail loudly. */
export function evaluateCondition(expr: string, vars: Record<string, unknown>): boolean {
  const v = evaluateExpression(expr, vars);
  if (typeof v !== 'boolean') throw new ExpressionError(expr, `must evaluate to a bool, got ${v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v}`);
  return v;
}

interface Segment {
  start: number;
  end: number;
  expr: string;
}

/**
 * Find `${{ ... }}` segments. A CEL map literal may contain `}}`, so the segment
 * ends at the first `}}` whose inner text parses; if none does, at the first `}}`
 * (and the parse error surfaces from there).
 */
function segments(template: string): Segment[] {
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

/** Problems with a template: unterminated `${{`, or the first bad expression. */
export function checkTemplate(template: string, opts: { names?: readonly string[] } = {}): string | undefined {
  const { expressions, error } = templateExpressions(template);
  if (error) return error;
  for (const e of expressions) {
    const p = checkExpression(e, opts);
    if (p) return `\${{ ${e} }}: ${p}`;
  }
  return undefined;
}

function stringify(v: unknown): string {
  if (typeof v === 'string') return v;
  // Like GitHub Actions, whose `${{ }}` syntax authors know: null renders empty.
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Replace every `${{ expr }}` in a string with the stringified value. */
export function interpolate(template: string, vars: Record<string, unknown>): string {
  let out = '';
  let last = 0;
  for (const s of segments(template)) {
    out += template.slice(last, s.start) + stringify(evaluateExpression(s.expr, vars));
    last = s.end;
  }
  return out + template.slice(last);
}

/**
 * Render a `with:` block: walks objects/arrays; a string that is exactly one
 * `${{ expr }}` keeps the value's type (number, bool, list...), others interpolate.
 */
export function renderValue(value: unknown, vars: Record<string, unknown>): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${{')) return value;
    const segs = segments(value);
    const only = segs[0];
    if (segs.length === 1 && only && only.start === 0 && only.end === value.length) return evaluateExpression(only.expr, vars);
    return interpolate(value, vars);
  }
  if (Array.isArray(value)) return value.map((v) => renderValue(v, vars));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = renderValue(v, vars);
    return out;
  }
  return value;
}
