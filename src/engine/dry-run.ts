/**
 * What a dry run does instead of a call: which calls it does not make, how it
 * describes them ("would call" with the fully rendered request) and what it
 * answers in their place (the stub), shaped like the real action's output so
 * later steps and `when:` conditions still evaluate.
 */
import { describeCall, type ActionDefinition } from '../actions/index.js';
import { ActionError } from '../errors.js';
import type { DryRunOptions, DryRunStub } from './types.js';

export const DEFAULT_STUB: DryRunStub = { status: 200, headers: {}, body: {} };

/** Actions that only compute or wait locally: never stubbed, even with noGather. */
const LOCAL_ACTIONS = new Set(['note', 'wait']);

export type Simulation = { kind: 'side_effect' | 'gather' } | undefined;

/** Whether a dry run records this call instead of making it, and why. */
export function simulation(dryRun: boolean, options: DryRunOptions | null, action: ActionDefinition, input: unknown): Simulation {
  if (!dryRun) return undefined;
  if (action.sideEffect(input)) return { kind: 'side_effect' };
  if (options?.noGather && !LOCAL_ACTIONS.has(action.name)) return { kind: 'gather' };
  // Never waiting: a condition to wait for is not polled either.
  if (options?.noWait && action.name === 'prometheus.wait') return { kind: 'gather' };
  return undefined;
}

/** The rendered request. Prometheus actions describe the GET they would send. */
export function describeSimulated(action: ActionDefinition, input: unknown, idempotencyKey: string): unknown {
  if (!action.describe && action.name.startsWith('prometheus.')) {
    const i = input as { url: string; query: string; time?: string | number; until?: string };
    const url = new URL(i.url);
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/api/v1/query`;
    url.searchParams.set('query', i.query);
    if (i.time !== undefined) url.searchParams.set('time', String(i.time));
    return { method: 'GET', url: url.toString(), headers: { accept: 'application/json' }, body: null, ...(i.until && { until: i.until }) };
  }
  return describeCall(action, input, { idempotencyKey });
}

export function stubOf(options: DryRunOptions | null): DryRunStub {
  return { ...DEFAULT_STUB, ...options?.stub };
}

/** Neutral output fields of the built-in actions, so expressions over a stubbed step's output do not break. */
function outputShape(action: string, input: unknown, stub: DryRunStub): Record<string, unknown> {
  switch (action) {
    case 'prometheus.query':
    case 'prometheus.wait':
      return { resultType: 'vector', value: null, vector: [] };
    case 'exec':
      return { exitCode: 0, stdout: typeof stub.body === 'string' ? stub.body : '', stderr: '', truncated: false };
    case 'slack.message': {
      const i = input as { channel?: string; text?: string };
      return { channel: i.channel ?? null, text: i.text ?? '', posted: false };
    }
    default:
      return { status: stub.status, headers: stub.headers, body: stub.body };
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The output a simulated step gets: the action's usual fields (an HTTP call gets
 * the stub's status, headers and body), any per-step `stubs` fields on top, and
 * the markers `dryRun`, `wouldCall` and `response`.
 */
export function stubbedOutput(action: string, stepId: string, input: unknown, wouldCall: unknown, options: DryRunOptions | null): Record<string, unknown> & { response: unknown } {
  const override = options?.stubs?.[stepId];
  const own = isRecord(override) && action === 'http.request' ? override : {};
  // An HTTP step's own stub (status, headers, body) is its response too.
  const stub: DryRunStub = {
    ...stubOf(options),
    ...(typeof own.status === 'number' && { status: own.status }),
    ...(isRecord(own.headers) && { headers: own.headers as Record<string, string> }),
    ...('body' in own && { body: own.body }),
  };
  return {
    ...outputShape(action, input, stub),
    ...(isRecord(override) ? override : {}),
    dryRun: true,
    wouldCall,
    response: { status: stub.status, headers: stub.headers, body: stub.body },
  };
}

/**
 * An HTTP step answered by a stub status it does not expect fails like the
 * real call would (retryable on 5xx/408/429), so authors can rehearse failure paths.
 */
export function checkStubStatus(action: string, stepId: string, input: unknown, options: DryRunOptions | null): void {
  if (action !== 'http.request') return;
  // A per-step stub's `status` answers that step (a test of a failure path); else the run's stub.
  const own = options?.stubs?.[stepId]?.status;
  const status = typeof own === 'number' ? own : stubOf(options).status;
  const expect = (input as { expect_status?: Array<number | string> }).expect_status;
  const ok = expect
    ? expect.some((e) => (typeof e === 'number' ? e === status : Math.floor(status / 100) === Number(String(e)[0])))
    : status >= 200 && status < 300;
  if (ok) return;
  const i = input as { method?: string; url?: string };
  throw new ActionError(`${i.method ?? 'GET'} ${i.url ?? ''} answered ${status} (dry-run stub)`, {
    retryable: status >= 500 || status === 408 || status === 429,
    details: { status, dryRun: true },
  });
}
