/**
 * The one owner of a run's state changes: request abort, resolve, admit,
 * park, wake, finish. Ingest (resolves), the API and Slack (aborts, answers)
 * call the interactive forms with a RunTx; the worker gets a Change (events
 * and statements) that it commits with its step's own changes in one batch.
 *
 *   queued ──admit──▶ running ⇄ waiting (approval) ──▶ succeeded | failed | aborted | cancelled
 *      └── abort before start ──▶ aborted
 *   queued | running | waiting ──cancel (a person, no compensation)──▶ cancelled
 *   failed | aborted | cancelled ──retry (a person, from a step)──▶ queued
 *
 * Every transition that can free a concurrency slot, or take a run out of a
 * key's queue, wakes the key (WAKE_KEY under the key's lock): finishing a run,
 * and aborting one that was still queued. Admission re-checks oldest first.
 */
import { ConflictError, NotFoundError, ValidationError } from '../errors.js';
import { call, type Call } from '../store/index.js';
import type { NewEvent } from '../timeline/index.js';
import * as Q from './queries.js';
import type { RunTx } from './run-tx.js';
import type { HoldingPause, RunEnd, RunRow, RunStatus } from './types.js';

/** Events and statements a worker commits together (see RunSession.commit). */
export interface Change {
  events: NewEvent[];
  calls: Call[];
  /** Take the concurrency key's lock first (admission, finish). */
  byKey?: boolean;
}

export function merge(...changes: Change[]): Change {
  return { events: changes.flatMap((c) => c.events), calls: changes.flatMap((c) => c.calls), byKey: changes.some((c) => c.byKey) };
}

/** A parked queued run is due again after this long even if no wake reaches it (belt and braces). */
export const QUEUED_SAFETY_MS = 60_000;

// ---------- from outside the worker ----------

export type AbortOutcome = 'aborted' | 'abort_requested';

/**
 * Ask a run to stop. A run still queued that no worker holds ends at once
 * (nothing to compensate) and wakes its key: the runs queued behind it may go.
 * Otherwise the request is recorded, pending approvals are cancelled and the
 * run is woken; its worker compensates and finishes it. The caller opened `tx`
 * with the run's concurrency key. Throws ConflictError for a finished run.
 */
export async function requestAbort(tx: RunTx, input: { actor: string; reason: string; key: string | null; status: string }): Promise<AbortOutcome> {
  const aborted = await tx.query(Q.ABORT_QUEUED, tx.runId, input.actor, input.reason);
  if (aborted.rowCount === 1) {
    await tx.query(Q.SKIP_PENDING_STEPS, tx.runId);
    await tx.append({ kind: 'run.aborted', actor: input.actor, data: { reason: input.reason, neverStarted: true } });
    if (input.key !== null) await tx.query(Q.WAKE_KEY, input.key);
    return 'aborted';
  }
  const requested = await tx.query(Q.REQUEST_ABORT, tx.runId, input.actor, input.reason);
  if (requested.rowCount === 0) throw new ConflictError(`run ${tx.runId} already finished (${input.status})`);
  const cancelled = await tx.query<{ id: string; step_id: string }>(Q.CANCEL_RUN_APPROVALS, tx.runId, input.actor);
  await tx.append(
    { kind: 'run.abort_requested', actor: input.actor, data: { reason: input.reason } },
    ...cancelled.rows.map((a): NewEvent => ({ kind: 'approval.cancelled', actor: input.actor, data: { approvalId: a.id, stepId: a.step_id, reason: input.reason } })),
  );
  await tx.query(Q.NOTIFY_RUNNABLE, 'abort');
  return 'abort_requested';
}

/**
 * The alert of a run's episode resolved: say so in its timeline, cancel its
 * pending approvals (the step is then skipped), and follow `on_resolved`:
 * `abort` asks the run to stop, `continue` wakes it.
 */
export async function resolveAlert(
  tx: RunTx,
  run: { status: string; onResolved: string; key: string | null },
  episode: { fingerprint: string; startsAt: string },
): Promise<void> {
  const active = run.status === 'queued' || run.status === 'running' || run.status === 'waiting';
  const events: NewEvent[] = [{ kind: 'alert.resolved', actor: 'system', data: { fingerprint: episode.fingerprint, startsAt: episode.startsAt, runStatus: run.status, onResolved: active ? run.onResolved : null } }];
  if (active) {
    const cancelled = await tx.query<{ id: string; step_id: string }>(Q.CANCEL_RUN_APPROVALS, tx.runId, 'system');
    for (const a of cancelled.rows) events.push({ kind: 'approval.cancelled', actor: 'system', data: { approvalId: a.id, stepId: a.step_id, reason: 'alert resolved' } });
  }
  await tx.append(...events);
  if (!active) return;
  if (run.onResolved === 'abort') {
    await requestAbort(tx, { actor: 'system', reason: 'alert resolved (on_resolved: abort)', key: run.key, status: run.status });
  } else {
    await wake(tx, 'resolved');
  }
}

/** Make the run due now and tell idle workers (an approval was decided, an alert resolved). */
export async function wake(tx: RunTx, why: string): Promise<void> {
  await tx.query(Q.WAKE_RUN, tx.runId);
  await tx.query(Q.NOTIFY_RUNNABLE, why);
}

// ---------- the worker's transitions ----------

/** queued -> running: the run holds a slot of its key from now on; its steps exist from now on. */
export function admit(run: RunRow, workerId: string): Change {
  const steps = run.definition.steps.map((s, position) => ({ step_id: s.id, position, action: s.action }));
  return {
    events: [{ kind: 'run.started', actor: 'system', data: { worker: workerId, ...(run.concurrency_key && { concurrencyKey: run.concurrency_key }) } }],
    calls: [call(Q.START_RUN, run.id, steps)],
  };
}

/** The key is full, or older runs are queued for it: wait for a wake (with a late safety timer). */
export function park(run: RunRow, occupancy: { active: number; ahead: number; queuedBefore: boolean }): Change {
  return {
    events: occupancy.queuedBefore
      ? []
      : [{ kind: 'run.queued', actor: 'system', data: { concurrencyKey: run.concurrency_key ?? '', limit: run.concurrency_limit ?? 0, active: occupancy.active, queuedAhead: occupancy.ahead } }],
    calls: [release(run.id, 'queued', QUEUED_SAFETY_MS)],
  };
}

/** Automation is paused: the run waits before `stepId` (null: before it starts) until a resume. */
export function heldEvent(pause: HoldingPause, stepId: string | null): NewEvent {
  return { kind: 'run.held', actor: 'system', data: { stepId, playbook: pause.playbook, pausedBy: pause.pausedBy, reason: pause.reason } };
}

/** Give the lease back; the run is due again after `delayMs` on the database clock. */
export function release(runId: string, status: RunStatus, delayMs: number): Call {
  return call(Q.RELEASE_RUN, runId, status, Math.max(0, Math.round(delayMs)));
}

/** Still waiting for `approvalId`: park until its deadline (a wake-up came early). */
export function waitForApproval(runId: string, approvalId: string): Call {
  return call(Q.PARK_UNTIL_DEADLINE, runId, approvalId);
}

/** An approval expired under the worker: the run is running again (it applies on_timeout now). */
export function resumeWaiting(runId: string): Call {
  return call(Q.RESUME_WAITING, runId);
}

/** The run stops: recorded first, so whoever drives it next finishes the same way. */
export function beginEnding(run: RunRow, status: RunEnd, reason: string, actor: string): Call {
  run.abort_requested_at ??= new Date();
  run.abort_requested_by ??= actor;
  run.abort_reason ??= reason;
  run.ending ??= status;
  return call(Q.MARK_ENDING, run.id, actor, reason, status);
}

/** The run ends: pending steps skipped, the outcome recorded, and the key woken (a slot is free). */
export function finish(run: RunRow, status: RunEnd, outcome: { reason: string; [k: string]: unknown }, actor: string, now: number): Change {
  const startedAt = (run.started_at ?? run.created_at).getTime();
  const data = { ...outcome, durationMs: Math.max(0, now - startedAt) };
  return {
    events: [{ kind: `run.${status}`, actor, data } as NewEvent],
    calls: [call(Q.FINISH_RUN, run.id, status, outcome), ...(run.concurrency_key ? [call(Q.WAKE_KEY, run.concurrency_key)] : [])],
    byKey: run.concurrency_key !== null,
  };
}

// ---------- repairs by a person (firebreak retry / cancel) ----------

/** Where a repair's automation-chain event goes (timeline.appendAutomation in the same transaction). */
export type AutomationAppend = (...events: NewEvent[]) => Promise<unknown>;

/** Finished runs a person may have continue. A succeeded run has nothing left to do. */
export const RETRYABLE_STATUSES = ['failed', 'aborted', 'cancelled'] as const;

interface RepairState {
  id: string;
  playbook: string;
  status: string;
  dry_run: boolean;
  concurrency_key: string | null;
  retries: number;
  steps: Array<{ id: string; action: string; onFailure?: string }> | null;
  step_rows: Array<{ id: string; position: number; status: string }>;
  resume_step: string | null;
}

async function repairState(tx: RunTx): Promise<RepairState> {
  const state = (await tx.query<RepairState>(Q.REPAIR_STATE, tx.runId)).rows[0];
  if (!state) throw new NotFoundError(`run ${tx.runId} not found`);
  return state;
}

export interface RetryResult {
  fromStep: string;
  retry: number;
  previousStatus: string;
}

/**
 * A finished run continues from `from` (default: the step that failed, or the
 * first that never got its turn): that step and the ones after it go back to
 * pending with their attempt numbers kept (the next attempt gets the next
 * number, so a new idempotency key); steps before it keep their results and
 * never run again. The run is queued again (admission and its concurrency key
 * decide when it goes), its end cleared, `retries` + 1; `run.retried` on its
 * chain and `repair.retried` on the automation chain, in this transaction.
 * ConflictError for a run that is active, succeeded, or a dry run;
 * ValidationError for an unknown step or one after the step that failed.
 */
export async function retry(tx: RunTx, automation: AutomationAppend, input: { actor: string; reason: string; from?: string }): Promise<RetryResult> {
  const state = await repairState(tx);
  if (state.dry_run) throw new ConflictError(`run ${tx.runId} is a dry run: start a new dry run instead of retrying it`);
  if (!(RETRYABLE_STATUSES as readonly string[]).includes(state.status)) {
    throw new ConflictError(`run ${tx.runId} is ${state.status}: only a failed, aborted or cancelled run can be retried${state.status === 'running' || state.status === 'waiting' || state.status === 'queued' ? ' (cancel it first)' : ''}`);
  }
  const defined = (state.steps ?? []).map((d) => d.id);
  const position = (id: string) => defined.indexOf(id);
  if (input.from !== undefined && position(input.from) < 0) {
    throw new ValidationError(`step ${input.from} is not a step of run ${tx.runId} (steps: ${defined.join(', ')})`, [{ path: 'from', message: `unknown step; one of ${defined.join(', ')}` }]);
  }
  // A run cancelled before it started has no step rows yet: it starts from its first step.
  const resume = state.resume_step ?? (state.step_rows.length === 0 ? (defined[0] ?? null) : null);
  if (input.from !== undefined && resume !== null && position(input.from) > position(resume)) {
    throw new ValidationError(`run ${tx.runId} can continue from step ${resume} or an earlier one, not from ${input.from} (the steps after ${resume} depend on it)`, [
      { path: 'from', message: `must be ${resume} or a step before it` },
    ]);
  }
  const from = input.from ?? resume;
  if (from === null) throw new ConflictError(`run ${tx.runId} has no failed or unfinished step to continue from; name one with --from <step>`);
  await tx.query(Q.RESET_STEPS_FROM, tx.runId, position(from));
  const retried = await tx.query<{ retries: number }>(Q.RETRY_RUN, tx.runId);
  if (retried.rowCount !== 1) throw new ConflictError(`run ${tx.runId} changed meanwhile; look again`);
  const result: RetryResult = { fromStep: from, retry: retried.rows[0]!.retries, previousStatus: state.status };
  await tx.append({ kind: 'run.retried', actor: input.actor, data: { fromStep: from, reason: input.reason, previousStatus: state.status, retry: result.retry } });
  await automation({ kind: 'repair.retried', actor: input.actor, data: { runId: tx.runId, playbook: state.playbook, fromStep: from, reason: input.reason, previousStatus: state.status } });
  await tx.query(Q.NOTIFY_RUNNABLE, 'retry');
  return result;
}

/**
 * A person ends an active run now as `cancelled`, WITHOUT compensation
 * (unlike abort): an attempt in flight is recorded failed, pending steps are
 * skipped, pending approvals cancelled, the lease cleared (a worker still
 * holding the run fails its guard and writes nothing more), the concurrency
 * key woken. `run.cancelled` on its chain and `repair.cancelled` on the
 * automation chain, in this transaction. The caller opened `tx` with the
 * run's key. ConflictError for a finished run.
 */
export async function cancel(tx: RunTx, automation: AutomationAppend, input: { actor: string; reason: string }): Promise<{ previousStatus: string }> {
  const state = await repairState(tx);
  if (!['queued', 'running', 'waiting'].includes(state.status)) throw new ConflictError(`run ${tx.runId} already finished (${state.status})`);
  const ended = await tx.query<{ duration_ms: number }>(Q.CANCEL_RUN, tx.runId, input.actor, { reason: input.reason, cancelledBy: input.actor }, input.reason);
  if (ended.rowCount !== 1) throw new ConflictError(`run ${tx.runId} changed meanwhile; look again`);
  const error = { message: `cancelled by ${input.actor}: ${input.reason}`, code: 'cancelled' };
  const cut = await tx.query<{ step_id: string; attempts: number }>(Q.CANCEL_RUNNING_STEPS, tx.runId, error);
  await tx.query(Q.SKIP_PENDING_STEPS, tx.runId);
  const approvals = await tx.query<{ id: string; step_id: string }>(Q.CANCEL_RUN_APPROVALS, tx.runId, input.actor);
  const defs = new Map((state.steps ?? []).map((d) => [d.id, d]));
  await tx.append(
    ...approvals.rows.map((a): NewEvent => ({ kind: 'approval.cancelled', actor: input.actor, data: { approvalId: a.id, stepId: a.step_id, reason: input.reason } })),
    ...cut.rows.map((s): NewEvent => ({
      kind: 'step.failed',
      actor: input.actor,
      data: { stepId: s.step_id, action: defs.get(s.step_id)?.action ?? 'unknown', attempt: s.attempts, error, onFailure: 'cancelled' },
    })),
    { kind: 'run.cancelled', actor: input.actor, data: { reason: input.reason, durationMs: Math.max(0, Math.round(Number(ended.rows[0]!.duration_ms))) } },
  );
  await automation({ kind: 'repair.cancelled', actor: input.actor, data: { runId: tx.runId, playbook: state.playbook, reason: input.reason, previousStatus: state.status } });
  if (state.concurrency_key !== null) await tx.query(Q.WAKE_KEY, state.concurrency_key);
  return { previousStatus: state.status };
}
