import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { z } from 'zod';
import { ValidationError, type FieldProblem } from '../errors.js';
import { noteAction, slackMessage, waitAction } from './basic.js';
import { execAction } from './exec.js';
import { httpRequest } from './http.js';
import { prometheusQuery, prometheusWait } from './prometheus.js';
import type { ActionContext, ActionDefinition } from './types.js';

/** Definitions are stored type-erased: the registry hands out whatever the schema parses to. */
type AnyAction = ActionDefinition<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export const builtinActions: ActionDefinition[] = [httpRequest, prometheusQuery, prometheusWait, waitAction, noteAction, slackMessage, execAction] as AnyAction[];

/** A read-only Map of action name -> definition (so it also serves as the playbook checker's catalog), plus sorted names. */
export interface ActionRegistry extends ReadonlyMap<string, ActionDefinition> {
  names(): string[];
}

const ACTION_NAME = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$/;

/** Built-ins plus custom actions; a name may be defined once (a custom action cannot shadow a built-in). */
export function createActionRegistry(custom: ActionDefinition[] = []): ActionRegistry {
  const map = new Map<string, ActionDefinition>();
  for (const def of [...builtinActions, ...custom]) {
    if (map.has(def.name)) throw new ValidationError(`action ${def.name} is defined twice`, [{ path: def.name, message: 'duplicate action name' }]);
    map.set(def.name, def);
  }
  return Object.assign(map, { names: () => [...map.keys()].sort() });
}

function shapeProblems(value: unknown): string[] {
  if (typeof value !== 'object' || value === null) return ['default export is not an object'];
  const v = value as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof v.name !== 'string' || !ACTION_NAME.test(v.name)) problems.push('name must be a lowercase dotted name like "team.restart"');
  if (typeof (v.input as { safeParse?: unknown } | undefined)?.safeParse !== 'function') problems.push('input must be a zod schema');
  if (typeof v.sideEffect !== 'function') problems.push('sideEffect must be a function');
  if (typeof v.run !== 'function') problems.push('run must be a function');
  for (const opt of ['target', 'describe'] as const) if (v[opt] !== undefined && typeof v[opt] !== 'function') problems.push(`${opt} must be a function`);
  return problems;
}

/**
 * Import every `*.js` / `*.mjs` in `dir` (compiled TypeScript) whose default export is an
 * ActionDefinition. A missing folder means no custom actions; a bad module is an error naming the file.
 */
export async function loadCustomActions(dir: string): Promise<ActionDefinition[]> {
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => /\.(m?js)$/.test(f)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const problems: FieldProblem[] = [];
  const defs: ActionDefinition[] = [];
  for (const file of files) {
    const path = resolve(join(dir, file));
    try {
      const mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
      const bad = shapeProblems(mod.default);
      if (bad.length > 0) problems.push(...bad.map((message) => ({ path, message })));
      else defs.push(mod.default as ActionDefinition);
    } catch (err) {
      problems.push({ path, message: `cannot import: ${(err as Error).message}` });
    }
  }
  if (problems.length > 0) throw new ValidationError(`invalid custom actions in ${dir}`, problems);
  return defs;
}

/** Parse a rendered `with:` block; problems name the field as `with.<path>`. */
export function parseActionInput<I>(def: ActionDefinition<I>, raw: unknown): I {
  const parsed = (def.input as z.ZodType<I>).safeParse(raw ?? {});
  if (parsed.success) return parsed.data;
  const details: FieldProblem[] = parsed.error.issues.flatMap((issue) => {
    const base = ['with', ...issue.path.map(String)].join('.');
    // zod reports unknown keys on the parent object; name each key instead.
    if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => ({ path: `${base}.${k}`, message: `unknown field (${def.name} accepts: ${knownKeys(def).join(', ')})` }));
    return [{ path: base, message: issue.message }];
  });
  throw new ValidationError(`invalid input for ${def.name}: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
}

function knownKeys(def: { input: unknown }): string[] {
  const shape = (def.input as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
}

/**
 * What a dry run records instead of calling: the fully rendered request.
 * `raw` is parsed first so defaults (method GET, args []) appear as they would be sent.
 */
export function describeCall(def: ActionDefinition, raw: unknown, ctx?: Pick<ActionContext, 'idempotencyKey'>): unknown {
  const input = parseActionInput(def, raw);
  return def.describe ? def.describe(input, ctx) : { action: def.name, input };
}
