import { z } from 'zod';
import { ActionError } from '../errors.js';
import { evaluateCondition, templateField } from '../expr/index.js';
import { parseJson } from '../json/index.js';
import { durationSchema, formatDuration } from './duration.js';
import { httpCall, isRetryableStatus } from './http-core.js';
import { httpUrl } from './http.js';
import { defineAction, done, type ActionContext, type ActionResult } from './types.js';

const QUERY_TIMEOUT_MS = 30_000;
const MAX_BYTES = 8 * 1024 * 1024;

export interface PromSample {
  labels: Record<string, string>;
  value: number;
}

export interface PromQueryOutput {
  resultType: string;
  /** First sample's value (vector) or the scalar; null when the result is empty. */
  value: number | null;
  vector: PromSample[];
}

// Each ${{ }} in `query` is escaped as PromQL: a string's content inside quotes, a number outside.
const url = templateField(httpUrl, 'url');
const query = templateField(z.string().min(1, 'must not be empty'), 'promql');

const promQueryInput = z.strictObject({
  url,
  query,
  time: z.union([z.string().min(1), z.number()]).optional(),
});

/** Prometheus encodes sample values as strings, including "NaN" and "+Inf". */
function sampleValue(raw: unknown): number {
  if (raw === '+Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  return Number(raw);
}

type PromBody = {
  status?: string;
  error?: string;
  errorType?: string;
  data?: { resultType?: string; result?: unknown };
};

/** One instant query (GET /api/v1/query) through the allow-listed HTTP core. */
export async function promQuery(input: z.output<typeof promQueryInput>, ctx: ActionContext): Promise<PromQueryOutput> {
  // Keep a path prefix (http://host/prometheus) and append the API path to it.
  const target = new URL(input.url);
  target.pathname = `${target.pathname.replace(/\/+$/, '')}/api/v1/query`;
  target.searchParams.set('query', input.query);
  if (input.time !== undefined) target.searchParams.set('time', String(input.time));
  const reply = await httpCall(
    { method: 'GET', url: target.toString(), headers: { accept: 'application/json' }, body: undefined, timeoutMs: QUERY_TIMEOUT_MS, maxBytes: MAX_BYTES },
    ctx,
  );
  let body: PromBody;
  try {
    body = parseJson(reply.text) as PromBody;
  } catch {
    throw new ActionError(`Prometheus at ${target.host} answered ${reply.status} with a non-JSON body`, {
      retryable: isRetryableStatus(reply.status),
    });
  }
  if (reply.status !== 200 || body.status !== 'success') {
    // 400 bad_data is a broken query: retrying cannot help. 422/503 (execution, timeout) can.
    throw new ActionError(`Prometheus query failed (${reply.status} ${body.errorType ?? ''}): ${body.error ?? 'no error message'}`, {
      retryable: reply.status !== 400 && (isRetryableStatus(reply.status) || reply.status === 422),
      details: { status: reply.status, errorType: body.errorType, error: body.error, query: input.query },
    });
  }
  return toOutput(body.data?.resultType ?? 'unknown', body.data?.result);
}

function toOutput(resultType: string, result: unknown): PromQueryOutput {
  if (resultType === 'scalar' && Array.isArray(result)) {
    const value = sampleValue(result[1]);
    return { resultType, value, vector: [{ labels: {}, value }] };
  }
  if ((resultType === 'vector' || resultType === 'matrix') && Array.isArray(result)) {
    const vector = (result as { metric?: Record<string, string>; value?: unknown[]; values?: unknown[][] }[]).map((series) => {
      // A matrix series contributes its latest sample, so `value` means "now" for both.
      const sample = series.value ?? series.values?.at(-1) ?? [];
      return { labels: series.metric ?? {}, value: sampleValue(sample[1]) };
    });
    return { resultType, value: vector[0]?.value ?? null, vector };
  }
  return { resultType, value: null, vector: [] };
}

export const prometheusQuery = defineAction({
  name: 'prometheus.query',
  input: promQueryInput,
  sideEffect: () => false,
  target: (input) => new URL(input.url).hostname,
  async run(input, ctx) {
    return done(await promQuery(input, ctx));
  },
});

const promWaitInput = z.strictObject({
  url,
  query,
  until: templateField(z.string().min(1, 'must be a CEL expression over value and vector'), 'cel'),
  interval: durationSchema.default(15_000).refine((ms) => ms > 0, 'must be more than 0'),
  timeout: durationSchema,
});

interface WaitState {
  polls: number;
  lastValue: number | null;
}

export const prometheusWait = defineAction({
  name: 'prometheus.wait',
  input: promWaitInput,
  sideEffect: () => false,
  target: (input) => new URL(input.url).hostname,
  async run(input, ctx): Promise<ActionResult> {
    const previous = ctx.state as Partial<WaitState> | undefined;
    const polls = (typeof previous?.polls === 'number' ? previous.polls : 0) + 1;
    const out = await promQuery(input, ctx);
    if (holds(input.until, out)) return done(out);

    const elapsed = ctx.now() - ctx.stepStartedAt;
    if (elapsed >= input.timeout) {
      throw new ActionError(
        `condition "${input.until}" not met within ${formatDuration(input.timeout)} (last value=${String(out.value)} after ${polls} polls)`,
        { retryable: false, details: { polls, lastValue: out.value, query: input.query } },
      );
    }
    const state: WaitState = { polls, lastValue: out.value };
    // Never sleep past the deadline: the last poll lands on it, so the timeout is reported on time.
    return { kind: 'poll', afterMs: Math.min(input.interval, input.timeout - elapsed), state, progress: `value=${String(out.value)} (poll ${polls})` };
  },
});

function holds(expr: string, out: PromQueryOutput): boolean {
  try {
    return evaluateCondition(expr, { value: out.value, vector: out.vector });
  } catch (err) {
    // An empty result makes `value < 0.01` a type error; that is "not yet", not a broken playbook.
    if (out.value === null) return false;
    throw new ActionError(`until expression "${expr}" failed: ${(err as Error).message}`, { retryable: false, cause: err });
  }
}
