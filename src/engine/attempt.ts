/**
 * One attempt of a step: its number and idempotency key, the statements that
 * start and end it, and the action call itself (timeout, abort signal, dry-run
 * simulation). The attempt row and `step.started` are committed before the
 * action is called; its result is committed in one batch with the step's new
 * state. A `running` step with attempts = n is attempt n cut short (a crash):
 * it is driven again with the same key.
 */
import type { Logger } from 'pino';
import { parseActionInput, type ActionDefinition } from '../actions/index.js';
import { ActionError } from '../errors.js';
import { contextsOf, renderValue } from '../expr/index.js';
import type { PlaybookStep } from '../playbooks/index.js';
import { call, type Call } from '../store/index.js';
import type { ErrorInfo, NewEvent } from '../timeline/index.js';
import * as Q from './queries.js';
import { release, type Change } from './transitions.js';
import type { RunRow, StepRow } from './types.js';

/**
 * Rendered step input: `with:` through the expression language, each value
 * escaped for where it goes (contexts from the action's schema), parsed by the
 * action's schema. The one place a step's (or a compensation's) input is rendered.
 */
export function renderInput(action: ActionDefinition, template: PlaybookStep['with'], vars: Record<string, unknown>): unknown {
  return parseActionInput(action, renderValue(template, vars, contextsOf(action.input)));
}

export interface AttemptPlan {
  attempt: number;
  idempotencyKey: string;
  /** Attempt n had no recorded outcome (a crash cut it short): same number, same key. */
  inFlight: boolean;
  /** A poll continues (wait, prometheus.wait): nothing to announce. */
  polling: boolean;
  /** What to commit before calling the action (nothing when polling on). */
  change: Change;
}

/** Work out the attempt and what starts it; `cleared` carries the decision that just cleared the step. */
export function planAttempt(run: RunRow, step: StepRow, def: PlaybookStep, workerId: string, params: unknown, cleared: { events: NewEvent[]; target: string | null } | null): AttemptPlan {
  const inFlight = step.attempts > 0 && step.status === 'running';
  const attempt = inFlight ? step.attempts : step.attempts + 1;
  const idempotencyKey = `${run.id}:${def.id}:${attempt}`;
  const polling = inFlight && step.poll_state !== null && step.poll_state !== undefined;
  const events: NewEvent[] = [...(cleared?.events ?? [])];
  if (!inFlight) {
    events.push({ kind: 'step.started', actor: 'system', data: { stepId: def.id, action: def.action, attempt, idempotencyKey, params } });
  } else if (!polling) {
    events.push({ kind: 'step.resumed', actor: 'system', data: { stepId: def.id, attempt, idempotencyKey, reason: 'the attempt was cut short (worker stopped); driving it again with the same key' } });
  }
  const calls: Call[] =
    events.length === 0
      ? []
      : [call(Q.BEGIN_ATTEMPT, run.id, def.id, attempt, idempotencyKey, workerId, step.poll_state ?? null, cleared?.target ?? null, cleared !== null)];
  return { attempt, idempotencyKey, inFlight, polling, change: { events, calls } };
}

/** Success: the attempt and the step succeeded, output stored (redacted, bounded), in one batch. */
export function succeeded(runId: string, def: PlaybookStep, attempt: number, output: unknown, durationMs: number): Change {
  return {
    events: [{ kind: 'step.succeeded', actor: 'system', data: { stepId: def.id, action: def.action, attempt, durationMs, output } }],
    calls: [call(Q.END_ATTEMPT, runId, def.id, attempt, 'succeeded', null, 'succeeded', output)],
  };
}

/** Still waiting (wait, prometheus.wait): keep the poll state, give the lease back until the next poll. */
export function polled(runId: string, def: PlaybookStep, attempt: number, result: { afterMs: number; state?: unknown; progress?: string }): Change {
  return {
    events: [{ kind: 'step.polled', actor: 'system', data: { stepId: def.id, attempt, progress: result.progress ?? null, nextPollInMs: result.afterMs } }],
    calls: [call(Q.UPDATE_STEP, runId, def.id, 'running', attempt, null, null, result.state ?? {}, null, false), release(runId, 'running', result.afterMs)],
  };
}

/** A failed attempt with attempts left: the next one is due after the backoff (a timer in the database). */
export function retrying(runId: string, def: PlaybookStep, attempt: number, error: ErrorInfo, delayMs: number, nextAttemptAt: Date, durationMs?: number): Change {
  return {
    events: [{ kind: 'step.retrying', actor: 'system', data: { stepId: def.id, attempt, error, nextAttempt: attempt + 1, nextAttemptAt: nextAttemptAt.toISOString(), ...(durationMs !== undefined && { durationMs }) } }],
    calls: [call(Q.END_ATTEMPT, runId, def.id, attempt, 'failed', error, 'pending', null), release(runId, 'running', delayMs)],
  };
}

/** The step failed for good (attempt 0: it never started, e.g. its inputs did not render). */
export function failed(runId: string, def: PlaybookStep, attempt: number, error: ErrorInfo, durationMs?: number): Change {
  return {
    events: [{ kind: 'step.failed', actor: 'system', data: { stepId: def.id, action: def.action, attempt, error, onFailure: def.onFailure, ...(durationMs !== undefined && { durationMs }) } }],
    calls: [attempt > 0 ? call(Q.END_ATTEMPT, runId, def.id, attempt, 'failed', error, 'failed', null) : call(Q.UPDATE_STEP, runId, def.id, 'failed', null, null, error, null, null, false)],
  };
}

/** `when:` was false, or the approval was cancelled / expired with on_timeout: skip. */
export function skipped(runId: string, stepId: string, data: { reason: string; when?: string; approvalId?: string }): Change {
  return {
    events: [{ kind: 'step.skipped', actor: 'system', data: { stepId, ...data } }],
    calls: [call(Q.UPDATE_STEP, runId, stepId, 'skipped', null, null, null, null, null, false)],
  };
}

/** The policy said no. */
export function denied(runId: string, stepId: string, events: NewEvent[], reasons: string[]): Change {
  return { events, calls: [call(Q.UPDATE_STEP, runId, stepId, 'denied', null, null, { message: 'denied by policy', reasons }, null, null, false)] };
}

export interface ActionCall {
  runId: string;
  stepId: string;
  attempt: number;
  idempotencyKey: string;
  state: unknown;
  stepStartedAt: number;
  dryRun: boolean;
  timeoutMs?: number;
  timeoutError: () => Error;
}

export interface ActionEnv {
  httpAllow: readonly string[];
  playbooksDir: string;
  now: () => number;
  logger: Logger;
  leaseHeld?: () => boolean;
}

/**
 * Call an action under `signal` (lease lost, abort requested) and its timeout.
 * Even an action that ignores its signal cannot hold the run past either.
 */
export async function callAction(action: ActionDefinition, input: unknown, attempt: ActionCall, signal: AbortSignal, env: ActionEnv): Promise<Awaited<ReturnType<ActionDefinition['run']>>> {
  const controller = new AbortController();
  const onParentAbort = () => controller.abort(signal.reason);
  if (signal.aborted) controller.abort(signal.reason);
  signal.addEventListener('abort', onParentAbort, { once: true });
  const timer = attempt.timeoutMs ? setTimeout(() => controller.abort(attempt.timeoutError()), attempt.timeoutMs) : undefined;
  const aborted = new Promise<never>((_, reject) => {
    const fail = () => reject(controller.signal.reason instanceof Error ? controller.signal.reason : new ActionError('aborted'));
    if (controller.signal.aborted) fail();
    else controller.signal.addEventListener('abort', fail, { once: true });
  });
  aborted.catch(() => {});
  try {
    return await Promise.race([
      action.run(input, {
        runId: attempt.runId,
        stepId: attempt.stepId,
        attempt: attempt.attempt,
        idempotencyKey: attempt.idempotencyKey,
        signal: controller.signal,
        logger: env.logger.child({ stepId: attempt.stepId, attempt: attempt.attempt }),
        httpAllow: env.httpAllow,
        playbooksDir: env.playbooksDir,
        state: attempt.state,
        stepStartedAt: attempt.stepStartedAt,
        now: env.now,
        dryRun: attempt.dryRun,
        ...(env.leaseHeld && { leaseHeld: env.leaseHeld }),
      }),
      aborted,
    ]);
  } finally {
    if (timer) clearTimeout(timer);
    signal.removeEventListener('abort', onParentAbort);
  }
}
