/**
 * One evaluation of an entry point, fail closed: whatever goes wrong (no
 * bundle, a throwing policy, an undefined or malformed result) becomes a deny
 * whose reason says what broke. Synchronous on purpose: opa-wasm evaluation
 * is, and this is the decision hot path.
 */
import canonicalizeCjs from 'canonicalize';
import { z } from 'zod';
import type { ApproveResult, AuthorizeResult, Decision, Evaluated } from './types.js';
import { APPROVE, AUTHORIZE, DECISION, type Entrypoint, type LoadedBundle, describeError, sha256 } from './bundle.js';

// canonicalize is CommonJS with ES-module typings: at runtime the default import is the function itself.
const canonicalize = canonicalizeCjs as unknown as (input: unknown) => string | undefined;

const decisionSchema = z
  .strictObject({
    allow: z.boolean(),
    require_approval: z.boolean(),
    approvers: z.array(z.string().min(1)),
    min_approvals: z.number().int().min(0),
    reasons: z.array(z.string()),
  })
  // An approval nobody can give would leave the run waiting forever.
  .refine((d) => !d.allow || !d.require_approval || (d.approvers.length > 0 && d.min_approvals > 0), {
    message: 'require_approval needs at least one approver and min_approvals >= 1',
  });

const approveSchema = z.strictObject({ allow: z.boolean(), reason: z.string() });

const authorizeSchema = z.strictObject({ allow: z.boolean(), reasons: z.array(z.string()) });

const SCHEMAS = { [DECISION]: decisionSchema, [APPROVE]: approveSchema, [AUTHORIZE]: authorizeSchema } as const;

export interface ResultOf {
  [DECISION]: Decision;
  [APPROVE]: ApproveResult;
  [AUTHORIZE]: AuthorizeResult;
}

const denyOf = {
  [DECISION]: (reason: string): Decision => ({ allow: false, require_approval: false, approvers: [], min_approvals: 0, reasons: [reason] }),
  [APPROVE]: (reason: string): ApproveResult => ({ allow: false, reason }),
  [AUTHORIZE]: (reason: string): AuthorizeResult => ({ allow: false, reasons: [reason] }),
};

/** The input as RFC 8785 canonical JSON: hashed for the timeline and handed to wasm as-is. */
export function canonicalInput(input: unknown): { text: string; hash: string } {
  const text = canonicalize(input);
  if (text === undefined) throw new Error('input is not a JSON value');
  return { text, hash: sha256(text) };
}

export function failClosed<E extends Entrypoint>(entrypoint: E, error: string, inputHash: string, bundleHash = 'none'): Evaluated<ResultOf[E]> {
  return { result: denyOf[entrypoint](`policy error, denied: ${error}`) as ResultOf[E], bundleHash, inputHash, error };
}

/** Evaluate `entrypoint` with the bundle (or the reason there is none). */
export function evaluate<E extends Entrypoint>(
  bundle: LoadedBundle | { error: string },
  entrypoint: E,
  input: unknown,
): Evaluated<ResultOf[E]> {
  let canonical: { text: string; hash: string };
  try {
    canonical = canonicalInput(input);
  } catch (e) {
    return failClosed(entrypoint, `${entrypoint} input cannot be serialised: ${describeError(e)}`, 'none');
  }
  if ('error' in bundle) return failClosed(entrypoint, bundle.error, canonical.hash);

  let raw: unknown;
  try {
    // An ArrayBuffer is taken as JSON text: the evaluated bytes are exactly the hashed ones.
    raw = bundle.policy.evaluate(new TextEncoder().encode(canonical.text).buffer, entrypoint);
  } catch (e) {
    return failClosed(entrypoint, `${entrypoint} failed: ${describeError(e)}`, canonical.hash, bundle.hash);
  }
  // opa-wasm answers a result set: [] when undefined, [{ result }] otherwise.
  if (!Array.isArray(raw) || raw.length === 0) {
    return failClosed(entrypoint, `${entrypoint} is undefined for this input`, canonical.hash, bundle.hash);
  }
  const parsed = SCHEMAS[entrypoint].safeParse((raw[0] as { result?: unknown }).result);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(result)'}: ${i.message}`).join('; ');
    return failClosed(entrypoint, `${entrypoint} returned a malformed result: ${problems}`, canonical.hash, bundle.hash);
  }
  return { result: parsed.data as ResultOf[E], bundleHash: bundle.hash, inputHash: canonical.hash };
}

const SAMPLE_DECISION = {
  playbook: { name: 'firebreak-load-check' },
  step: { id: 'load_check', action: 'note', impact: 'low', approval: 'policy', params: {} },
  alert: { severity: 'info', labels: {} },
  run: { id: 'load-check', trigger: 'manual', started_by: null, dry_run: true },
  history: [],
};
const SAMPLE_APPROVE = {
  approval: {
    id: 'load-check', run_id: 'load-check', step_id: 'load_check', approvers: [], min_approvals: 1, started_by: null,
    playbook: 'firebreak-load-check', action: 'note', impact: 'low', decision: 'approve', already_approved_by: [],
  },
  user: { id: 'system:load-check', name: 'load-check', method: 'local', verified: false, groups: [] },
  mode: 'authenticated',
};
const SAMPLE_AUTHORIZE = {
  user: { id: 'system:load-check', name: 'load-check', method: 'local', verified: false, groups: [] },
  action: 'run.start',
  resource: { playbook: 'firebreak-load-check', dry_run: true },
  mode: 'authenticated',
};

/**
 * Ask every entry point a harmless question before a bundle goes live, so a
 * bundle that cannot answer at all (wrong shape, undefined, throwing) shows
 * up in status() rather than only in denied steps. What it answers is not judged.
 */
export function checkAnswers(bundle: LoadedBundle): string | undefined {
  const now = new Date().toISOString();
  for (const [entrypoint, input] of [[DECISION, SAMPLE_DECISION], [APPROVE, SAMPLE_APPROVE], [AUTHORIZE, SAMPLE_AUTHORIZE]] as const) {
    const r = evaluate(bundle, entrypoint, { ...input, now });
    if (r.error) return `bundle ${bundle.hash.slice(0, 12)} cannot answer a sample ${entrypoint} question: ${r.error}`;
  }
  return undefined;
}
