/**
 * Drives one leased run forward, turn by turn, until it finishes or parks on
 * a timer (retry backoff, wait, poll), a concurrency slot or an approval.
 * Each turn decides in the app and commits in one batch (RunSession.commit);
 * everything it learns is written before it acts on it. See ARCHITECTURE.md.
 *
 * The pieces: admission.ts (concurrency), clearance.ts (policy, approvals),
 * attempt.ts (an attempt's statements and the action call), compensation.ts,
 * transitions.ts (run state), run-tx.ts (the guarded batch).
 */
import type { Logger } from 'pino';
import type { ActionDefinition, ActionRegistry } from '../actions/index.js';
import type { Secrets } from '../config/index.js';
import { ActionError, coerceError, StepTimeoutError, ValidationError } from '../errors.js';
import { evaluateCondition, WITHHELD_SECRETS } from '../expr/index.js';
import type { PlaybookStep } from '../playbooks/index.js';
import type { PolicyGate } from '../policy/types.js';
import { call, type DatabaseClock, type Pool } from '../store/index.js';
import type { NewEvent, Timeline } from '../timeline/index.js';
import { admitOrPark } from './admission.js';
import { callAction, denied, failed, planAttempt, polled, renderInput, retrying, skipped, succeeded, type AttemptPlan } from './attempt.js';
import { backoffDelay } from './backoff.js';
import { clearStep } from './clearance.js';
import { compensate, toCompensate } from './compensation.js';
import { checkStubStatus, describeSimulated, simulation, stubbedOutput } from './dry-run.js';
import { RecordedRuns, scriptOf, type RecordedOutcome, type Script } from './scripted.js';
import * as Q from './queries.js';
import { DefinitionCache, LeaseLostError, RunChangedError, RunSession, type LoadedRow } from './run-tx.js';
import { boundedOutput, errorInfo } from './stored.js';
import { beginEnding, finish, heldEvent, merge, release, waitForApproval, type Change } from './transitions.js';
import type { EngineRails, HoldingPause, RunEnd, RunRow, StepRow } from './types.js';

export interface ExecutorDeps {
  pool: Pool;
  timeline: Timeline;
  clock: DatabaseClock;
  actions: ActionRegistry;
  policy: PolicyGate;
  logger: Logger;
  secrets: Secrets;
  httpAllow: readonly string[];
  playbooksDir: string;
  /** Told after commits that others may care about (Slack posts, console updates, metrics). */
  onEvent?: (runId: string, events: NewEvent[]) => void;
  /** The kill switch and circuit breaker (src/rails). */
  rails?: EngineRails;
}

/** What stops a turn: the lease (lost, or the worker stops for good) and an abort request. */
export interface RunSignals {
  /** Stop everything and write nothing more: another worker may hold the run now. */
  lease: AbortSignal;
  /** Someone asked the run to abort: cut the step in flight short; compensation still runs. */
  abort: AbortSignal;
  /** Checked synchronously as a request leaves the process: false once the lease may be gone (see Worker). */
  leaseHeld?: () => boolean;
}

/** How a turn ended: go on with the next, or stop driving the run (parked on a timer or finished). */
type Outcome = 'next' | 'stop';

const MAX_TURNS = 10_000;

export class RunExecutor {
  private readonly definitions = new DefinitionCache();
  private readonly recorded = new RecordedRuns();

  constructor(
    private readonly deps: ExecutorDeps,
    private readonly workerId: string,
  ) {}

  private load(runId: string): Promise<RunSession | undefined> {
    return RunSession.load(this.deps, this.definitions, runId, this.workerId);
  }

  /** Advance a run this worker has leased, until it parks or finishes (or the lease goes). `claimed`: the row its claim loaded. */
  async advance(runId: string, signals: RunSignals, claimed?: LoadedRow): Promise<void> {
    const log = this.deps.logger.child({ runId });
    let session = claimed ? await RunSession.from(this.deps, this.definitions, claimed, this.workerId) : await this.load(runId);
    let knownAbort = false;
    for (let turn = 0; turn < MAX_TURNS; turn++) {
      if (!session || signals.lease.aborted) return;
      try {
        // An abort request reaches us as a signal: read the run again to see who asked and why.
        if (signals.abort.aborted && !knownAbort) {
          knownAbort = true;
          if (!session.run.abort_requested_at) throw new RunChangedError(runId);
        }
        if ((await this.turn(session, signals, log)) === 'stop') return;
      } catch (err) {
        if (err instanceof RunChangedError) {
          session = await this.load(runId);
          continue;
        }
        if (err instanceof LeaseLostError) {
          log.warn('lease lost; another worker continues this run');
          return;
        }
        throw err;
      }
    }
    throw new Error(`run ${runId} made no progress in ${MAX_TURNS} turns`);
  }

  private async turn(session: RunSession, signals: RunSignals, log: Logger): Promise<Outcome> {
    const run = session.run;
    if (run.abort_requested_at) {
      // Stopping: the end its worker decided, or (someone asked) aborted; still queued, it did nothing: cancelled.
      const status: RunEnd = run.ending ?? (run.status === 'queued' ? 'cancelled' : 'aborted');
      await this.abortRun(session, status, run.abort_reason ?? `aborted by ${run.abort_requested_by ?? 'someone'}`, run.abort_requested_by ?? 'system', signals);
      return 'stop';
    }
    if (run.status === 'queued') return (await admitOrPark(session)) ? 'next' : 'stop';
    const step = session.steps.find((s) => s.status === 'pending' || s.status === 'running');
    if (!step) {
      const failedSteps = session.steps.filter((s) => s.status === 'failed').map((s) => s.step_id);
      const done = this.finish(session, 'succeeded', { reason: 'all steps done', ...(failedSteps.length > 0 && { failedSteps }) }, 'system');
      await session.commit(done.events, done.calls, done);
      return 'stop';
    }
    const def = run.definition.steps.find((d) => d.id === step.step_id);
    if (!def) throw new Error(`run ${run.id}: step ${step.step_id} is not in the run's definition`);
    // The kill switch: no further step starts (a step in flight, status running, finishes).
    const pause = step.status === 'pending' && !run.dry_run ? await this.deps.rails?.paused(run.playbook) : undefined;
    if (pause) return this.hold(session, step, pause);
    return this.advanceStep(session, step, def, signals, log);
  }

  /** Automation is paused: say so once and give the run back; it is not claimed again until a resume. */
  private async hold(session: RunSession, step: StepRow, pause: HoldingPause): Promise<Outcome> {
    const run = session.run;
    await this.commit(session, {
      events: [heldEvent(pause, step.step_id)],
      calls: [release(run.id, run.status, 0)],
    });
    return 'stop';
  }

  // ---------- one step ----------

  private variables(run: RunRow, steps: StepRow[], withSecrets: boolean): Record<string, unknown> {
    const stepVars: Record<string, unknown> = {};
    for (const s of steps) stepVars[s.step_id] = { output: s.output ?? null, status: s.status, attempts: s.attempts };
    return {
      alert: run.alert ?? {},
      steps: stepVars,
      run: { id: run.id, playbook: run.playbook, trigger: run.trigger, started_by: run.started_by ?? '', dry_run: run.dry_run, params: run.params ?? {} },
      // A playbook sent with a request (a dry run) is not ours: it gets no secret values.
      secrets: !withSecrets ? {} : run.dry_run && run.dry_run_options?.playbooksFrom === 'request' ? WITHHELD_SECRETS : this.deps.secrets.asObject(),
    };
  }

  private async advanceStep(session: RunSession, step: StepRow, def: PlaybookStep, signals: RunSignals, log: Logger): Promise<Outcome> {
    const run = session.run;
    const action = this.deps.actions.get(def.action);
    if (!action) return this.failStep(session, step, def, new ActionError(`unknown action ${def.action}`, { retryable: false }), 0, signals);
    const vars = this.variables(run, session.steps, true);
    const script = await scriptOf(this.deps.pool, this.recorded, run);

    let input: unknown;
    try {
      input = renderInput(action, def.with, vars);
    } catch (err) {
      // A step that would be skipped anyway need not render.
      if (!step.cleared_at && def.when && this.tryWhen(def, vars) === false) return this.skip(session, step, { when: def.when, reason: 'condition is false' });
      const cause = new ActionError(`cannot render inputs of step ${def.id}: ${coerceError(err).message}`, { retryable: false, cause: err, ...(err instanceof ValidationError && { details: err.details }) });
      return this.failStep(session, step, def, cause, step.attempts, signals);
    }

    let cleared: { events: NewEvent[]; target: string | null } | null = null;
    if (!step.cleared_at) {
      if (def.when) {
        let holds: boolean;
        try {
          holds = evaluateCondition(def.when, vars);
        } catch (err) {
          return this.failStep(session, step, def, new ActionError(`when: ${coerceError(err).message}`, { retryable: false, cause: err }), step.attempts, signals);
        }
        if (!holds) return this.skip(session, step, { when: def.when, reason: 'condition is false' });
      }
      const c = await clearStep(this.clearanceDeps(script), session, def, action, input);
      switch (c.kind) {
        case 'cleared':
          cleared = c;
          break;
        case 'denied': {
          // The deny and the decision to stop commit together: a worker that takes over finishes the same way.
          const reason = `policy denied step ${def.id}: ${c.reasons.join('; ') || 'no reason given'}`;
          await this.commit(session, merge(denied(run.id, def.id, c.events, c.reasons), { events: [], calls: [beginEnding(run, 'failed', reason, 'policy')] }));
          step.status = 'denied';
          await this.abortRun(session, 'failed', reason, 'policy', signals);
          return 'stop';
        }
        case 'ask':
          await this.commit(session, c.change);
          return 'stop';
        case 'wait':
          await session.commit([], [waitForApproval(run.id, c.approvalId)]);
          return 'stop';
        case 'expire':
          await this.commit(session, c.change);
          if (session.approval) session.approval.status = 'expired';
          run.status = 'running';
          return 'next';
        case 'skip':
          return this.skip(session, step, c.data);
        case 'abort':
          await this.abortRun(session, 'aborted', c.reason, c.actor, signals);
          return 'stop';
        case 'answered':
          await this.commit(session, c.change);
          session.approval = c.approval;
          return 'next';
        case 'stop':
          await this.commit(session, merge(c.change, this.finish(session, 'cancelled', { reason: c.reason }, 'replay')));
          return 'stop';
      }
    }
    return this.execute(session, step, def, action, input, cleared, signals, log, script);
  }

  private clearanceDeps(script: Script | undefined) {
    return { pool: this.deps.pool, policy: this.deps.policy, redact: this.deps.timeline.redact, ...(script && { script }) };
  }

  private tryWhen(def: PlaybookStep, vars: Record<string, unknown>): boolean | undefined {
    try {
      return def.when ? evaluateCondition(def.when, vars) : undefined;
    } catch {
      return undefined;
    }
  }

  /** The run's end, its outcome redacted like everything else it stores. */
  private finish(session: RunSession, status: RunEnd, outcome: { reason: string; [k: string]: unknown }, actor: string): Change {
    return finish(session.run, status, this.deps.timeline.redact(outcome) as typeof outcome, actor, session.now());
  }

  private commit(session: RunSession, change: Change) {
    return session.commit(change.events, change.calls, change);
  }

  /** The run is done once no step is left to run: fold its finish into this step's batch. */
  private withFinishIfLast(session: RunSession, stepId: string, change: Change): { change: Change; last: boolean } {
    const left = session.steps.some((s) => s.step_id !== stepId && (s.status === 'pending' || s.status === 'running'));
    if (left) return { change, last: false };
    const failedSteps = session.steps.filter((s) => s.step_id !== stepId && s.status === 'failed').map((s) => s.step_id);
    return { change: merge(change, this.finish(session, 'succeeded', { reason: 'all steps done', ...(failedSteps.length > 0 && { failedSteps }) }, 'system')), last: true };
  }

  private async skip(session: RunSession, step: StepRow, data: { reason: string; when?: string; approvalId?: string }): Promise<Outcome> {
    const { change, last } = this.withFinishIfLast(session, step.step_id, skipped(session.run.id, step.step_id, data));
    await this.commit(session, change);
    step.status = 'skipped';
    return last ? 'stop' : 'next';
  }

  // ---------- execution ----------

  private async execute(
    session: RunSession,
    step: StepRow,
    def: PlaybookStep,
    action: ActionDefinition,
    input: unknown,
    cleared: { events: NewEvent[]; target: string | null } | null,
    signals: RunSignals,
    log: Logger,
    script?: Script,
  ): Promise<Outcome> {
    const plan = planAttempt(session.run, step, def, this.workerId, this.deps.timeline.redact(input), cleared);
    if (plan.change.calls.length > 0) {
      // The decision that cleared the step (if it was just made) commits with the attempt's start.
      const results = await this.commit(session, plan.change);
      this.started(session, step, plan, results[0], cleared !== null);
    }
    return this.runAttempt(session, step, def, action, input, plan, signals, log, script);
  }

  /** The cached step after its attempt's start committed (BEGIN_ATTEMPT returns the database's started_at). */
  private started(session: RunSession, step: StepRow, plan: AttemptPlan, updated: { rows: Array<Record<string, unknown>> } | undefined, cleared: boolean): void {
    step.status = 'running';
    step.attempts = plan.attempt;
    step.started_at = (updated?.rows[0]?.started_at as Date | undefined) ?? step.started_at ?? new Date(session.now());
    if (cleared) step.cleared_at = new Date(session.now());
  }

  /** Call the action of a started attempt and commit its result (with the next step's start when it can go at once). */
  private async runAttempt(session: RunSession, step: StepRow, def: PlaybookStep, action: ActionDefinition, input: unknown, plan: AttemptPlan, signals: RunSignals, log: Logger, script?: Script): Promise<Outcome> {
    const run = session.run;
    const { attempt, idempotencyKey } = plan;
    const stepStartedAt = step.started_at?.getTime() ?? session.now();
    const callStartedAt = session.now();

    // A replay answers a step the recorded run finished with what it recorded (a note still runs: it is local).
    const recorded = def.action === 'note' ? undefined : script?.outcome(def.id);
    const simulated = recorded ? { kind: 'recorded' as const } : simulation(run.dry_run, run.dry_run_options, action, input);
    const wouldCall: NewEvent[] = [];
    let result: Awaited<ReturnType<ActionDefinition['run']>>;
    try {
      if (simulated) {
        // Dry run: record the fully rendered call instead of making it, and answer with the stub (or the recorded result).
        const request = this.deps.timeline.redact(describeSimulated(action, input, idempotencyKey));
        const output = recorded ? recordedOutput(recorded, request) : stubbedOutput(def.action, def.id, input, request, run.dry_run_options);
        const reason = recorded && action.sideEffect(input) ? 'side_effect' : simulated.kind;
        wouldCall.push({ kind: 'step.would_call', actor: 'system', data: { stepId: def.id, action: def.action, attempt, reason, request, response: output.response } });
        if (recorded?.status === 'failed') throw new ActionError(`${recorded.error.message} (as recorded in run ${script!.replayOf})`, { retryable: false, details: { recorded: true } });
        if (!recorded) checkStubStatus(def.action, def.id, input, run.dry_run_options);
        result = { kind: 'done', output };
      } else if (run.dry_run && run.dry_run_options?.noWait && def.action === 'wait') {
        // A dry run that never waits: the pause is noted, not taken.
        result = { kind: 'done', output: { waitedMs: 0, dryRun: true, wouldWait: (input as { duration?: unknown }).duration ?? null } };
      } else {
        const either = AbortSignal.any([signals.lease, signals.abort]);
        result = await callAction(
          action,
          input,
          { runId: run.id, stepId: def.id, attempt, idempotencyKey, state: step.poll_state ?? undefined, stepStartedAt, dryRun: run.dry_run, timeoutMs: def.timeoutMs, timeoutError: () => new StepTimeoutError(def.id, def.timeoutMs!) },
          either,
          { httpAllow: this.deps.httpAllow, playbooksDir: this.deps.playbooksDir, now: () => session.now(), logger: log, ...(signals.leaseHeld && { leaseHeld: signals.leaseHeld }) },
        );
      }
    } catch (err) {
      if (signals.lease.aborted || signals.leaseHeld?.() === false) throw new LeaseLostError(run.id);
      // Abort requested: the attempt is cut short; the abort turn records it and compensates.
      if (signals.abort.aborted && !(err instanceof StepTimeoutError)) throw new RunChangedError(run.id);
      return this.failStep(session, step, def, err, attempt, signals, session.now() - callStartedAt, wouldCall);
    }

    if (result.kind === 'poll') {
      await this.commit(session, merge({ events: wouldCall, calls: [] }, polled(run.id, def, attempt, result)));
      return 'stop';
    }
    const output = boundedOutput(this.deps.timeline.redact(result.output));
    const success = merge({ events: wouldCall, calls: [] }, succeeded(run.id, def, attempt, output, session.now() - stepStartedAt));
    const { change, last } = this.withFinishIfLast(session, def.id, success);
    // The cache sees the success now, so the next step renders with this output; a failed commit reloads the run.
    step.status = 'succeeded';
    step.output = output;
    step.poll_state = null;
    const next = last ? undefined : await this.readyToStart(session, signals);
    const results = await this.commit(session, next ? merge(change, next.plan.change) : change);
    if (!next) return last ? 'stop' : 'next';
    this.started(session, next.step, next.plan, results[change.calls.length], true);
    return this.runAttempt(session, next.step, next.def, next.action, next.input, next.plan, signals, log);
  }

  /**
   * The next step, when it can start in the same batch as the success before
   * it: a fresh step whose inputs render, whose `when:` holds, that needs no
   * database read to be decided (no target, so no `history`) and that the
   * policy clears without an approval. Anything else takes its own turn.
   */
  private async readyToStart(session: RunSession, signals: RunSignals): Promise<{ step: StepRow; def: PlaybookStep; action: ActionDefinition; input: unknown; plan: AttemptPlan } | undefined> {
    const run = session.run;
    if (run.abort_requested_at || signals.abort.aborted || signals.lease.aborted) return undefined;
    if (!run.dry_run && this.deps.rails?.pausedNow(run.playbook)) return undefined;
    const step = session.steps.find((s) => s.status === 'pending' || s.status === 'running');
    if (!step || step.status !== 'pending' || step.cleared_at || step.attempts > 0) return undefined;
    const def = run.definition.steps.find((d) => d.id === step.step_id);
    const action = def && this.deps.actions.get(def.action);
    if (!def || !action) return undefined;
    const vars = this.variables(run, session.steps, true);
    let input: unknown;
    try {
      input = renderInput(action, def.with, vars);
      if (def.when && !evaluateCondition(def.when, vars)) return undefined;
      if (action.target?.(input)) return undefined;
    } catch {
      return undefined;
    }
    const c = await clearStep(this.clearanceDeps(await scriptOf(this.deps.pool, this.recorded, run)), session, def, action, input);
    if (c.kind !== 'cleared') return undefined;
    return { step, def, action, input, plan: planAttempt(run, step, def, this.workerId, this.deps.timeline.redact(input), c) };
  }

  private async failStep(session: RunSession, step: StepRow, def: PlaybookStep, err: unknown, attempt: number, signals: RunSignals, durationMs?: number, before: NewEvent[] = []): Promise<Outcome> {
    const run = session.run;
    const info = this.deps.timeline.redact(errorInfo(err)) as ReturnType<typeof errorInfo>;
    const retryable = err instanceof ActionError ? err.retryable : !(err instanceof ValidationError);
    const prior: Change = { events: before, calls: [] };
    if (attempt > 0 && retryable && attempt < def.retry.attempts) {
      const delay = run.dry_run && run.dry_run_options?.noWait ? 0 : backoffDelay(attempt, def.retry.backoffMs, def.retry.maxBackoffMs);
      await this.commit(session, merge(prior, retrying(run.id, def, attempt, info, delay, new Date(session.now() + delay), durationMs)));
      return 'stop';
    }
    const failure = merge(prior, failed(run.id, def, attempt, info, durationMs));
    if (def.onFailure === 'continue') {
      const { change, last } = this.withFinishIfLast(session, def.id, failure);
      await this.commit(session, change);
      step.status = 'failed';
      return last ? 'stop' : 'next';
    }
    // The failure and the decision to stop commit together: a worker that takes over finishes the same way.
    const reason = `step ${def.id} failed: ${String(info.message)}`;
    await this.commit(session, merge(failure, { events: [], calls: [beginEnding(run, 'failed', reason, 'system')] }));
    step.status = 'failed';
    await this.abortRun(session, 'failed', reason, 'system', signals);
    return 'stop';
  }

  // ---------- abort, compensation ----------

  /**
   * Cancel the pending approval, record a step cut short as failed, run the
   * `compensate` of completed steps newest first, then finish (which wakes the key).
   */
  private async abortRun(session: RunSession, status: RunEnd, reason: string, actor: string, signals: RunSignals): Promise<void> {
    const run = session.run;
    const first: Change = { events: [], calls: [beginEnding(run, status, reason, actor)] };
    const pending = session.approval?.status === 'pending' ? session.approval : null;
    if (pending) {
      first.events.push({ kind: 'approval.cancelled', actor: 'system', data: { approvalId: pending.id, stepId: pending.step_id, reason } });
      first.calls.push(call(Q.CANCEL_RUN_APPROVALS, run.id, actor));
    }
    for (const s of session.steps.filter((x) => x.status === 'running')) {
      const def = run.definition.steps.find((d) => d.id === s.step_id);
      if (!def) continue;
      const cut = failed(run.id, def, s.attempts, { message: `interrupted: run ${status === 'failed' ? 'failed' : 'aborted'}`, code: 'interrupted' });
      first.events.push(...cut.events);
      first.calls.push(...cut.calls);
    }
    const steps = toCompensate(session);
    if (steps.length === 0) {
      await this.commit(session, merge(first, this.finish(session, status, { reason }, actor)));
      await this.deps.rails?.runEnded(run, status);
      return;
    }
    await this.commit(session, first);
    if (pending) pending.status = 'cancelled';
    for (const s of session.steps) if (s.status === 'running') s.status = 'failed';
    const vars = this.variables(run, session.steps, true);
    const compensated: string[] = [];
    const compensationFailed: string[] = [];
    const deps = { actions: this.deps.actions, redact: this.deps.timeline.redact, httpAllow: this.deps.httpAllow, playbooksDir: this.deps.playbooksDir, logger: this.deps.logger };
    for (const { row, def } of steps) {
      const ok = await compensate(deps, session, row, def, vars, signals.lease, signals.leaseHeld);
      (ok ? compensated : compensationFailed).push(def.id);
    }
    await this.commit(session, this.finish(session, status, { reason, ...(compensated.length > 0 && { compensated }), ...(compensationFailed.length > 0 && { compensationFailed }) }, actor));
    await this.deps.rails?.runEnded(run, status);
  }
}

/** A replayed step's output: what the recorded run's step returned, marked as not called. */
function recordedOutput(recorded: RecordedOutcome, request: unknown): Record<string, unknown> & { response: unknown } {
  const output = recorded.status === 'succeeded' && recorded.output && typeof recorded.output === 'object' && !Array.isArray(recorded.output) ? (recorded.output as Record<string, unknown>) : {};
  return { ...output, dryRun: true, recorded: true, wouldCall: request, response: recorded.status === 'succeeded' ? recorded.output : { error: recorded.error.message } };
}
