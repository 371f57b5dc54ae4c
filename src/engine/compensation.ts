/**
 * Compensation: when a run aborts, the `compensate` actions of its succeeded
 * steps run newest first, each with the key `<run>:<step>:compensate` and its
 * state in run_steps.compensation_status, so a crash mid-compensation re-drives
 * the `running` one with the same key. A compensation that fails is recorded
 * and the others still run.
 *
 * Its call runs under the LEASE signal (not the abort signal: the run is
 * aborting already): when this worker loses the lease, the call is cut at once
 * and nothing more is written, so two workers never compensate a step at the
 * same time.
 */
import type { Logger } from 'pino';
import type { ActionRegistry } from '../actions/index.js';
import { ActionError, StepTimeoutError } from '../errors.js';
import type { PlaybookStep } from '../playbooks/index.js';
import { call } from '../store/index.js';
import type { NewEvent } from '../timeline/index.js';
import { callAction, renderInput } from './attempt.js';
import { describeSimulated, simulation } from './dry-run.js';
import * as Q from './queries.js';
import { LeaseLostError, type RunSession } from './run-tx.js';
import { boundedOutput, errorInfo } from './stored.js';
import type { StepRow } from './types.js';

const DEFAULT_COMPENSATION_TIMEOUT_MS = 60_000;

export interface CompensationDeps {
  actions: ActionRegistry;
  redact: (value: unknown) => unknown;
  httpAllow: readonly string[];
  playbooksDir: string;
  logger: Logger;
}

/** The steps to compensate, newest first: succeeded (or cut short mid-compensation) and with a `compensate`. */
export function toCompensate(session: RunSession): Array<{ row: StepRow; def: PlaybookStep }> {
  return session.steps
    .filter((s) => (s.status === 'succeeded' || s.compensation_status === 'running') && !['succeeded', 'failed', 'skipped'].includes(s.compensation_status ?? ''))
    .map((row) => ({ row, def: session.run.definition.steps.find((d) => d.id === row.step_id) }))
    .filter((s): s is { row: StepRow; def: PlaybookStep } => Boolean(s.def?.compensate))
    .sort((a, b) => b.row.position - a.row.position);
}

/** Run one step's compensation. True when it succeeded. Throws LeaseLostError when the lease went meanwhile. */
export async function compensate(deps: CompensationDeps, session: RunSession, row: StepRow, def: PlaybookStep, vars: Record<string, unknown>, lease: AbortSignal, leaseHeld?: () => boolean): Promise<boolean> {
  const run = session.run;
  const comp = def.compensate!;
  const idempotencyKey = `${run.id}:${def.id}:compensate`;
  const action = deps.actions.get(comp.action);
  await session.commit([{ kind: 'compensation.started', actor: 'system', data: { stepId: def.id, action: comp.action, idempotencyKey } }], [call(Q.SET_COMPENSATION, run.id, def.id, 'running')]);
  row.compensation_status = 'running';
  let outcome: NewEvent;
  let ok = false;
  try {
    if (!action) throw new ActionError(`unknown action ${comp.action}`, { retryable: false });
    const input = renderInput(action, comp.with, vars);
    let output: unknown;
    const simulated = simulation(run.dry_run, run.dry_run_options, action, input);
    if (simulated) {
      output = { dryRun: true, reason: simulated.kind, wouldCall: deps.redact(describeSimulated(action, input, idempotencyKey)) };
    } else {
      const timeoutMs = def.timeoutMs ?? DEFAULT_COMPENSATION_TIMEOUT_MS;
      const result = await callAction(
        action,
        input,
        { runId: run.id, stepId: def.id, attempt: 1, idempotencyKey, state: undefined, stepStartedAt: session.now(), dryRun: run.dry_run, timeoutMs, timeoutError: () => new StepTimeoutError(def.id, timeoutMs) },
        lease,
        { httpAllow: deps.httpAllow, playbooksDir: deps.playbooksDir, now: () => session.now(), logger: deps.logger.child({ runId: run.id }), ...(leaseHeld && { leaseHeld }) },
      );
      if (result.kind === 'poll') throw new ActionError('compensation actions cannot wait or poll', { retryable: false });
      output = result.output;
    }
    ok = true;
    outcome = { kind: 'compensation.succeeded', actor: 'system', data: { stepId: def.id, action: comp.action, output: boundedOutput(deps.redact(output)) } };
  } catch (err) {
    if (lease.aborted || leaseHeld?.() === false) throw new LeaseLostError(run.id);
    outcome = { kind: 'compensation.failed', actor: 'system', data: { stepId: def.id, action: comp.action, error: deps.redact(errorInfo(err)) as ReturnType<typeof errorInfo> } };
  }
  await session.commit([outcome], [call(Q.SET_COMPENSATION, run.id, def.id, ok ? 'succeeded' : 'failed')]);
  row.compensation_status = ok ? 'succeeded' : 'failed';
  if (ok) row.status = 'compensated';
  return ok;
}
