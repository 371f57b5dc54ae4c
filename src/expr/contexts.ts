/**
 * An action's input schema says how each field is escaped: a field schema
 * carries `.meta({ template: 'url' })` (or 'promql', 'cel', 'mrkdwn'); the
 * rest is 'plain'. zod keeps metadata in a registry shared across copies of
 * zod v4 (globalThis), so custom actions built against their own zod can
 * declare contexts the same way.
 */
import { globalRegistry, type z } from 'zod';
import { TEMPLATE_CONTEXTS, type TemplateContext } from './escape.js';
import type { ContextOf } from './template.js';

/** Mark a field of an action's input schema with the escaping its templates get. */
export function templateField<S extends z.ZodType>(schema: S, context: TemplateContext): S {
  return schema.meta({ template: context }) as S;
}

interface ZodInternals {
  _zod?: { def?: Record<string, unknown> & { type?: string } };
}

function declared(schema: unknown): TemplateContext | undefined {
  const meta = globalRegistry.get(schema as z.ZodType) as { template?: unknown } | undefined;
  const t = meta?.template;
  return typeof t === 'string' && (TEMPLATE_CONTEXTS as readonly string[]).includes(t) ? (t as TemplateContext) : undefined;
}

/** Wrappers whose inner schema describes the same value. */
function unwrap(schema: unknown): unknown {
  const def = (schema as ZodInternals)._zod?.def;
  if (!def) return undefined;
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'catch':
    case 'readonly':
    case 'nonoptional':
      return def.innerType;
    case 'pipe':
      return def.in;
    case 'lazy':
      return typeof def.getter === 'function' ? (def.getter as () => unknown)() : undefined;
    default:
      return undefined;
  }
}

/** The schema of one step into a value (object key, record value, array element). */
function child(schema: unknown, key: string | number): unknown[] {
  const def = (schema as ZodInternals)._zod?.def;
  if (!def) return [];
  switch (def.type) {
    case 'object':
      return typeof key === 'string' && def.shape && typeof def.shape === 'object' && key in def.shape ? [(def.shape as Record<string, unknown>)[key]] : [];
    case 'record':
      return [def.valueType];
    case 'array':
      return [def.element];
    case 'tuple':
      return typeof key === 'number' && Array.isArray(def.items) ? [def.items[key]] : [];
    case 'union':
      return Array.isArray(def.options) ? def.options : [];
    default:
      return [];
  }
}

/**
 * The context at `path` inside values of `schema`: the deepest declared one
 * along the way (a context on `blocks` covers every string in the blocks).
 */
export function templateContextAt(schema: unknown, path: readonly (string | number)[]): TemplateContext {
  let found: TemplateContext | undefined;
  let frontier: unknown[] = [schema];
  const seen = new Set<unknown>();
  const settle = (nodes: unknown[]): unknown[] => {
    // Follow wrappers and union members, noting any context declared on them.
    const out: unknown[] = [];
    const queue = [...nodes];
    while (queue.length > 0) {
      const n = queue.shift();
      if (!n || seen.has(n)) continue;
      seen.add(n);
      const ctx = declared(n);
      if (ctx) found = ctx;
      out.push(n);
      const inner = unwrap(n);
      if (inner) queue.push(inner);
      const def = (n as ZodInternals)._zod?.def;
      if (def?.type === 'union' && Array.isArray(def.options)) queue.push(...def.options);
    }
    return out;
  };
  frontier = settle(frontier);
  for (const key of path) {
    seen.clear();
    frontier = settle(frontier.flatMap((s) => child(s, key)));
    if (frontier.length === 0) break;
  }
  return found ?? 'plain';
}

const cache = new WeakMap<object, Map<string, TemplateContext>>();

/** A cached `ContextOf` for an action's input schema. */
export function contextsOf(schema: unknown): ContextOf {
  if (!schema || typeof schema !== 'object') return () => 'plain';
  let byPath = cache.get(schema);
  if (!byPath) cache.set(schema, (byPath = new Map()));
  const memo = byPath;
  return (path) => {
    const key = JSON.stringify(path);
    let ctx = memo.get(key);
    if (ctx === undefined) {
      ctx = templateContextAt(schema, path);
      if (memo.size < 1_000) memo.set(key, ctx);
    }
    return ctx;
  };
}
