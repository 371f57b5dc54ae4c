/**
 * The one owner of a run's state changes: request abort, resolve, admit,
 * park, wake, finish. Ingest (resolves), the API and Slack (aborts, answers)
 * call the interactive forms with a RunTx; the worker gets a Change (events
 * and statements) that it commits with its step's own changes in one batch.
 *
 *   queued ──admit──▶ running ⇄ waiting (approval) ──▶ succeeded | failed | aborted | cancelled
 *      └── abort before start ──▶ aborted
 *
 * Every transition that can free a concurrency slot, or take a run out of a
 * key's queue, wakes the key (WAKE_KEY under the key's lock): finishing a run,
 * and aborting one that was still queued. Admission re-checks oldest first.
 */
import { ConflictError } from '../errors.js';
import { call, type Call } from '../store/index.js';
import type { NewEvent } from '../timeline/index.js';
import * as Q from './queries.js';
import type { RunTx } from './run-tx.js';
import type { RunEnd, RunRow, RunStatus } from './types.js';

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
