/**
 * Checks that need more than the schema: known actions and their inputs, CEL in
 * `${{ }}` / `when:`, that `steps.<id>` only reads steps that ran before, that
 * secrets are only interpolated whole, and how each interpolation is escaped
 * for its field (opting out with unescaped() is a warning).
 */
import type { z } from 'zod';
import { checkExpression, checkTemplateIn, contextsOf, referencedSteps, templateExpressions, type ContextOf } from '../expr/index.js';
import type { PlaybookSpec } from './schema.js';

export type PathSegment = string | number;
export interface PathIssue {
  path: PathSegment[];
  message: string;
  /** Warnings are reported but do not make the playbook invalid. */
  severity?: 'warning';
}

/** Registered actions: names only, or names with their zod input schema (then `with:` is checked too). */
export type ActionCatalog = ReadonlyMap<string, { input: z.ZodType }> | ReadonlySet<string>;

const RUN_NAMES = ['alert', 'steps', 'run', 'secrets'];
// Evaluated when the run starts, before any step has an output; the result is stored and shown, so no secrets.
const START_NAMES = ['alert', 'run'];

export function formatPath(path: readonly PathSegment[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('') || '(top level)';
}

/** Every string inside a value, with its path (for `with:` blocks). */
function* strings(value: unknown, path: PathSegment[]): Generator<[string, PathSegment[]]> {
  if (typeof value === 'string') yield [value, path];
  else if (Array.isArray(value)) for (const [i, v] of value.entries()) yield* strings(v, [...path, i]);
  else if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) yield* strings(v, [...path, k]);
}

function at(value: unknown, path: readonly PathSegment[]): unknown {
  let v = value;
  for (const p of path) v = typeof v === 'object' && v !== null ? (v as Record<PathSegment, unknown>)[p] : undefined;
  return v;
}

/**
 * Validate a `with:` block against the action's input schema, ignoring issues at or
 * under a value that holds `${{ }}`: its type is only known once rendered.
 */
function checkInput(schema: z.ZodType, input: Record<string, unknown>, path: PathSegment[], out: PathIssue[]): void {
  const res = schema.safeParse(input);
  if (res.success) return;
  for (const issue of res.error.issues) {
    const rel = issue.path.filter((p): p is PathSegment => typeof p !== 'symbol');
    const templated = rel.some((_, i) => {
      const v = at(input, rel.slice(0, i + 1));
      return typeof v === 'string' && v.includes('${{');
    });
    if (templated) continue;
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) out.push({ path: [...path, ...rel, k], message: `unknown field "${k}" for this action` });
    } else {
      const missing = at(input, rel) === undefined && issue.code === 'invalid_type';
      out.push({ path: [...path, ...rel], message: missing ? 'is required by this action' : issue.message });
    }
  }
}

function checkAction(actions: ActionCatalog, name: string, input: Record<string, unknown>, path: PathSegment[], out: PathIssue[]): void {
  if (!actions.has(name)) {
    out.push({ path: [...path, 'action'], message: `unknown action "${name}" (known: ${[...actions.keys()].sort().join(', ')})` });
    return;
  }
  // A Set only names actions; a Map also gives the input schema to check `with:` against.
  if ('get' in actions) checkInput(actions.get(name)!.input, input, [...path, 'with'], out);
}

/** Step references of one expression: each must name an earlier step (`visible`). */
function checkRefs(expr: string, visible: readonly string[], all: readonly string[], path: PathSegment[], out: PathIssue[]): void {
  for (const id of referencedSteps(expr)) {
    if (visible.includes(id)) continue;
    out.push({
      path,
      message: all.includes(id)
        ? `steps.${id} is not available here: a step can only use the output of earlier steps`
        : `unknown step "${id}" in steps.${id} (steps: ${all.join(', ')})`,
    });
  }
}

/** How the named action escapes each `with:` field (all plain when the catalog only has names). */
function contextsFor(actions: ActionCatalog, name: string): ContextOf {
  const def = 'get' in actions ? actions.get(name) : undefined;
  return def ? contextsOf(def.input) : () => 'plain';
}

function checkStrings(value: unknown, path: PathSegment[], contextOf: ContextOf, visible: readonly string[], all: readonly string[], out: PathIssue[]): void {
  for (const [text, p] of strings(value, path)) {
    if (!text.includes('${{')) continue;
    const report = checkTemplateIn(text, contextOf(p.slice(path.length)), { names: RUN_NAMES });
    for (const warning of report.warnings) out.push({ path: p, message: warning, severity: 'warning' });
    if (report.errors.length > 0) {
      for (const error of report.errors) out.push({ path: p, message: error });
      continue;
    }
    for (const e of templateExpressions(text).expressions) checkRefs(e, visible, all, p, out);
  }
}

/** All problems of a schema-valid playbook, as paths into the file. */
export function checkPlaybook(spec: PlaybookSpec, actions: ActionCatalog): PathIssue[] {
  const out: PathIssue[] = [];
  for (const [field, value] of [
    ['channel', spec.channel],
    ['concurrency', spec.concurrency?.key],
    ['limits', spec.limits?.key],
  ] as const) {
    if (value === undefined) continue;
    const path = field === 'channel' ? [field] : [field, 'key'];
    for (const problem of checkTemplateIn(value, 'plain', { names: START_NAMES, allowSecret: false }).errors) {
      out.push({ path, message: problem.replace(/unknown name "steps"[^)]*\)/, 'steps are not available here: this is evaluated when the run starts') });
    }
  }
  const all = spec.steps.map((s) => s.id);
  spec.steps.forEach((step, i) => {
    const path: PathSegment[] = ['steps', i];
    const earlier = all.slice(0, i);
    checkAction(actions, step.action, step.with, path, out);
    checkStrings(step.with, [...path, 'with'], contextsFor(actions, step.action), earlier, all, out);
    if (step.when !== undefined) {
      const problem = step.when.includes('${{')
        ? 'write a bare expression (e.g. steps.x.output.value > 1), not ${{ }} inside it'
        : checkExpression(step.when, { names: RUN_NAMES, allowSecret: false });
      if (problem) out.push({ path: [...path, 'when'], message: problem });
      else checkRefs(step.when, earlier, all, [...path, 'when'], out);
    }
    if (step.compensate) {
      const cpath = [...path, 'compensate'];
      checkAction(actions, step.compensate.action, step.compensate.with, cpath, out);
      // Compensation runs after its step succeeded, so it may read that step's own output.
      checkStrings(step.compensate.with, [...cpath, 'with'], contextsFor(actions, step.compensate.action), all.slice(0, i + 1), all, out);
    }
  });
  return out;
}
