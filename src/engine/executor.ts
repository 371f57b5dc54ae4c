/**
 * Drives one leased run forward, step by step, until it finishes or parks on
 * a timer (retry backoff, wait, poll) or an approval. Everything it learns is
 * written to Postgres before it acts on it; see ARCHITECTURE.md.
 */
import type { Logger } from 'pino';
import { parseActionInput, type ActionDefinition, type ActionRegistry } from '../actions/index.js';
import type { Secrets } from '../config/index.js';
import { ActionError, coerceError, StepTimeoutError, ValidationError } from '../errors.js';
import { contextsOf, evaluateCondition, renderValue, WITHHELD_SECRETS } from '../expr/index.js';
import type { PlaybookStep } from '../playbooks/index.js';
import type { Decision, DecisionInput, Evaluated, PolicyGate } from '../policy/types.js';
import { escapeLiteral, withTransaction, type Pool, type PoolClient } from '../store/index.js';
import { lockAndReadHeadSql, type ChainHead, type NewEvent, type Timeline } from '../timeline/index.js';
import { backoffDelay } from './backoff.js';
import { checkStubStatus, describeSimulated, simulation, stubbedOutput } from './dry-run.js';
import * as Q from './queries.js';
import type { RunRow, RunStatus, StepRow } from './types.js';

export interface ExecutorDeps {
  pool: Pool;
  timeline: Timeline;
  actions: ActionRegistry;
  policy: PolicyGate;
  logger: Logger;
  secrets: Secrets;
  httpAllow: readonly string[];
  playbooksDir: string;
  now: () => number;
  /** Told after commits that others may care about (Slack posts, console updates). */
  onEvent?: (runId: string, events: NewEvent[]) => void;
}

/** How a step's turn ended. */
type StepOutcome = 'next' | 'park' | 'finished' | 'lost';

/** A step the policy (and any approval) just cleared: what to record when its attempt starts. */
interface Clearance {
  events: NewEvent[];
  target: string | null;
}
const NOT_CLEARED_NOW: Clearance = { events: [], target: null };

/** The lease was taken by another worker: stop without writing anything more. */
class LeaseLostError extends Error {}

const MAX_STORED_OUTPUT = 64 * 1024;
const DEFAULT_COMPENSATION_TIMEOUT_MS = 60_000;

function boundedOutput(value: unknown): unknown {
  const text = JSON.stringify(value ?? null);
  if (text.length <= MAX_STORED_OUTPUT) return value ?? null;
  return { truncated: true, bytes: text.length, preview: text.slice(0, 4_096) };
}

function errorInfo(err: unknown): Record<string, unknown> {
  const e = coerceError(err);
  return {
    message: e.message,
    code: (e as { code?: unknown }).code ?? 'error',
    ...(e instanceof ActionError && { retryable: e.retryable }),
    ...(e instanceof ActionError && e.details !== undefined && { details: e.details }),
    ...(e instanceof ValidationError && { details: e.details }),
  };
}

export class RunExecutor {
  /** Chain head of each open run transaction (read when it took the lock, advanced by each append). */
  private readonly heads = new Map<PoolClient, ChainHead | null>();

  constructor(
    private readonly deps: ExecutorDeps,
    private readonly workerId: string,
  ) {}

  /**
   * Advance a run this worker has leased. `signal` aborts when the lease is
   * lost or someone asks the run to abort (the heartbeat notices both).
   */
  async advance(runId: string, signal: AbortSignal): Promise<void> {
    const log = this.deps.logger.child({ runId });
    try {
      let cached: RunRow | undefined;
      for (let turns = 0; turns < 10_000; turns++) {
        // Nothing else changes the run row while we hold the lease, except an abort request,
        // which the heartbeat turns into `signal`: re-read it only then (and after admission).
        const run = !cached || signal.aborted ? await this.loadRun(runId) : cached;
        if (!run) return; // lease lost
        cached = run;
        let steps = await this.loadSteps(runId);
        if (steps.length === 0) steps = await this.createSteps(run);
        if (run.abort_requested_at) {
          // A run stopped before it ever started (still queued) is cancelled: it did nothing.
          await this.abortRun(run, steps, run.status === 'queued' ? 'cancelled' : 'aborted', run.abort_reason ?? `aborted by ${run.abort_requested_by ?? 'someone'}`, run.abort_requested_by ?? 'system');
          return;
        }
        if (run.status === 'queued') {
          if (!(await this.admit(run))) return;
          cached = undefined;
          continue;
        }
        const step = steps.find((s) => s.status === 'pending' || s.status === 'running');
        if (!step) {
          const failed = steps.filter((s) => s.status === 'failed').map((s) => s.step_id);
          await this.finish(run, 'succeeded', { reason: 'all steps done', ...(failed.length > 0 && { failedSteps: failed }) }, 'system');
          return;
        }
        const def = run.definition.steps.find((d) => d.id === step.step_id);
        if (!def) throw new Error(`run ${runId}: step ${step.step_id} is not in the run's definition`);
        const outcome = await this.advanceStep(run, steps, step, def, signal, log);
        if (outcome !== 'next') return;
      }
      throw new Error(`run ${runId} made no progress in 10000 turns`);
    } catch (err) {
      if (err instanceof LeaseLostError) {
        log.warn('lease lost; another worker continues this run');
        return;
      }
      throw err;
    }
  }

  // ---------- loading ----------

  private async loadRun(runId: string): Promise<RunRow | undefined> {
    const { rows } = await this.deps.pool.query<RunRow>(Q.LEASED_RUN, [runId, this.workerId]);
    return rows[0];
  }

  private async loadSteps(runId: string): Promise<StepRow[]> {
    return (await this.deps.pool.query<StepRow>(Q.RUN_STEPS, [runId])).rows;
  }

  private async createSteps(run: RunRow): Promise<StepRow[]> {
    const steps = run.definition.steps;
    await this.deps.pool.query(Q.INSERT_STEPS, [run.id, steps.map((s) => s.id), steps.map((_, i) => i), steps.map((s) => s.action)]);
    return this.loadSteps(run.id);
  }

  /**
   * A transaction on the run: chain lock first, then the lease check (fencing),
   * then the chain head, sent as one simple-protocol round trip (literals escaped
   * by the driver): this is the hot path, and every round trip costs syscalls.
   */
  private async inRun<T>(runId: string, fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const run = escapeLiteral(runId);
    const [lock, head] = lockAndReadHeadSql(run);
    // Fencing: `for update` holds the run row until commit, so no worker can claim the run
    // (CLAIM_RUNS skips locked rows) while the holder commits, even if its lease just expired;
    // otherwise a claim landing mid-commit reads the step as running and calls it again.
    const fence = `select 1 from runs where id = ${run}::uuid and lease_owner = ${escapeLiteral(this.workerId)} for update`;
    return withTransaction(
      this.deps.pool,
      async (client, opened) => {
        if ((opened[2]?.rowCount ?? 0) === 0) throw new LeaseLostError();
        this.heads.set(client, (opened[3]?.rows[0] as ChainHead | undefined) ?? null);
        try {
          return await fn(client);
        } finally {
          this.heads.delete(client);
        }
      },
      { begin: `begin; ${lock}; ${fence}; ${head}` },
    );
  }

  /** Append inside inRun, which holds the chain lock and knows the head. */
  private async record(client: PoolClient, runId: string, events: NewEvent[]): Promise<void> {
    const appended = await this.deps.timeline.appendToLockedRun(client, runId, this.heads.get(client), events);
    const last = appended.at(-1);
    if (last) this.heads.set(client, { seq: last.seq, hash: last.hash });
  }

  private emitted(runId: string, events: NewEvent[]): void {
    try {
      this.deps.onEvent?.(runId, events);
    } catch (err) {
      this.deps.logger.warn({ runId, err: coerceError(err).message }, 'event listener failed');
    }
  }

  private async release(client: PoolClient, runId: string, runAt: Date, status: RunStatus): Promise<void> {
    await client.query(Q.RELEASE_LEASE, [runId, this.workerId, runAt, status]);
  }

  // ---------- admission (concurrency) ----------

  private async admit(run: RunRow): Promise<boolean> {
    const key = run.concurrency_key;
    const events: NewEvent[] = [];
    const admitted = await this.inRun(run.id, async (client) => {
      if (key && run.concurrency_limit) {
        await client.query(Q.LOCK_CONCURRENCY_KEY, [key]);
        const { rows } = await client.query<{ n: number; ahead: number }>(Q.ACTIVE_WITH_KEY, [key, run.id, run.created_at]);
        if ((rows[0]?.n ?? 0) + (rows[0]?.ahead ?? 0) >= run.concurrency_limit) {
          const { rowCount } = await client.query(Q.HAS_QUEUED_EVENT, [run.id]);
          if (rowCount === 0) {
            events.push({ kind: 'run.queued', actor: 'system', data: { concurrencyKey: key, limit: run.concurrency_limit, active: rows[0]?.n ?? 0, queuedAhead: rows[0]?.ahead ?? 0 } });
            await this.record(client, run.id, events);
          }
          // Woken when a slot frees (WAKE_QUEUED_WITH_KEY); the late run_at is only a safety net.
          await this.release(client, run.id, new Date(this.deps.now() + 60_000), 'queued');
          return false;
        }
      }
      await client.query(Q.START_RUN, [run.id, this.workerId]);
      events.push({ kind: 'run.started', actor: 'system', data: { worker: this.workerId, ...(key && { concurrencyKey: key }) } });
      await this.record(client, run.id, events);
      return true;
    });
    this.emitted(run.id, events);
    return admitted;
  }

  // ---------- one step ----------

  private variables(run: RunRow, steps: StepRow[], withSecrets: boolean): Record<string, unknown> {
    const stepVars: Record<string, unknown> = {};
    for (const s of steps) stepVars[s.step_id] = { output: s.output ?? null, status: s.status, attempts: s.attempts };
    return {
      alert: run.alert ?? {},
      steps: stepVars,
      run: {
        id: run.id,
        playbook: run.playbook,
        trigger: run.trigger,
        started_by: run.started_by ?? '',
        dry_run: run.dry_run,
        params: run.params ?? {},
      },
      // A playbook sent with a request (a dry run) is not ours: it gets no secret values.
      secrets: !withSecrets ? {} : run.dry_run && run.dry_run_options?.playbooksFrom === 'request' ? WITHHELD_SECRETS : this.deps.secrets.asObject(),
    };
  }

  private async advanceStep(run: RunRow, steps: StepRow[], step: StepRow, def: PlaybookStep, signal: AbortSignal, log: Logger): Promise<StepOutcome> {
    const action = this.deps.actions.get(def.action);
    if (!action) return this.failStep(run, steps, step, def, new ActionError(`unknown action ${def.action}`, { retryable: false }), 0);
    const vars = this.variables(run, steps, true);

    let input: unknown;
    try {
      input = parseActionInput(action, renderValue(def.with, vars, contextsOf(action.input)));
    } catch (err) {
      if (!step.cleared_at && def.when) {
        // A step that would be skipped anyway need not render.
        const skip = this.tryWhen(def, vars);
        if (skip === false) return this.skipStep(run, step, { when: def.when, reason: 'condition is false' });
      }
      return this.failStep(run, steps, step, def, new ActionError(`cannot render inputs of step ${def.id}: ${coerceError(err).message}`, { retryable: false, cause: err, ...(err instanceof ValidationError && { details: err.details }) }), step.attempts);
    }

    if (!step.cleared_at) {
      if (def.when) {
        let holds: boolean;
        try {
          holds = evaluateCondition(def.when, vars);
        } catch (err) {
          return this.failStep(run, steps, step, def, new ActionError(`when: ${coerceError(err).message}`, { retryable: false, cause: err }), step.attempts);
        }
        if (!holds) return this.skipStep(run, step, { when: def.when, reason: 'condition is false' });
      }
      const cleared = await this.clearStep(run, steps, step, def, action, input);
      if (typeof cleared === 'string') return cleared;
      return this.executeStep(run, steps, step, def, action, input, signal, log, cleared);
    }
    return this.executeStep(run, steps, step, def, action, input, signal, log);
  }

  private tryWhen(def: PlaybookStep, vars: Record<string, unknown>): boolean | undefined {
    try {
      return def.when ? evaluateCondition(def.when, vars) : undefined;
    } catch {
      return undefined;
    }
  }

  private async skipStep(run: RunRow, step: StepRow, data: Record<string, unknown>): Promise<StepOutcome> {
    const events: NewEvent[] = [{ kind: 'step.skipped', actor: 'system', data: { stepId: step.step_id, ...data } }];
    await this.inRun(run.id, async (client) => {
      await client.query(Q.UPDATE_STEP, [run.id, step.step_id, 'skipped', null, null, null, null, null, false]);
      await this.record(client, run.id, events);
    });
    this.emitted(run.id, events);
    return 'next';
  }

  /**
   * Policy decision and, when needed, the approval. A Clearance means the step may run now; its
   * events (the decision) are written with the attempt's start, in one transaction.
   */
  private async clearStep(run: RunRow, steps: StepRow[], step: StepRow, def: PlaybookStep, action: ActionDefinition, input: unknown): Promise<StepOutcome | Clearance> {
    const target = action.target?.(input) ?? null;
    const params = this.deps.timeline.redact(input);
    const history = target
      ? (await this.deps.pool.query(Q.HISTORY, [def.action, target, run.id])).rows.map((h: Record<string, unknown>) => ({ ...h, at: (h.at as Date).toISOString() }))
      : [];
    const decisionInput: DecisionInput = {
      playbook: { name: run.definition.name, description: run.definition.description },
      step: { id: def.id, action: def.action, impact: def.impact, approval: def.approval, params, target: target ?? '' } as DecisionInput['step'],
      alert: run.alert ?? null,
      run: { id: run.id, trigger: run.trigger, started_by: run.started_by, dry_run: run.dry_run },
      history: history as DecisionInput['history'],
      now: new Date(this.deps.now()).toISOString(),
    };
    const evaluated = await this.decide(decisionInput);
    const decision = evaluated.result;
    const decisionEvent: NewEvent = {
      kind: 'policy.decision',
      actor: 'policy',
      data: {
        stepId: def.id,
        entrypoint: 'firebreak/decision',
        allow: decision.allow,
        requireApproval: decision.require_approval,
        approvers: decision.approvers,
        minApprovals: decision.min_approvals,
        reasons: decision.reasons,
        bundleHash: evaluated.bundleHash,
        inputHash: evaluated.inputHash,
        // The input itself (params already redacted), so `firebreak policy eval` can replay the decision.
        input: decisionInput,
        ...(evaluated.error && { error: evaluated.error }),
      },
    };
    if (!decision.allow) {
      return this.denyStep(run, steps, step, def, decisionEvent, decision.reasons);
    }
    const needsApproval = def.approval === 'required' || (def.approval === 'policy' && decision.require_approval);
    if (!needsApproval) return { events: [decisionEvent], target };
    return this.handleApproval(run, steps, step, def, decision, decisionEvent, params, target);
  }

  private async decide(input: DecisionInput): Promise<Evaluated<Decision>> {
    try {
      return await this.deps.policy.decide(input);
    } catch (err) {
      // The gate must fail closed itself; this is the last line of defence.
      const reason = `policy evaluation failed: ${coerceError(err).message}`;
      return {
        result: { allow: false, require_approval: false, approvers: [], min_approvals: 0, reasons: [reason] },
        bundleHash: 'unknown',
        inputHash: 'unknown',
        error: reason,
      };
    }
  }

  private async handleApproval(
    run: RunRow,
    steps: StepRow[],
    step: StepRow,
    def: PlaybookStep,
    decision: Decision,
    decisionEvent: NewEvent,
    params: unknown,
    target: string | null,
  ): Promise<StepOutcome | Clearance> {
    const { rows } = await this.deps.pool.query<{ id: string; round: number; status: string; decided_by: string | null; approvers: string[] }>(Q.LATEST_APPROVAL, [run.id, def.id]);
    const latest = rows[0];
    const status = latest?.status;
    if (!latest || status === 'pending') {
      return this.requestApproval(run, def, decision, decisionEvent, params, latest ? latest.round : 1, latest ? [] : undefined, latest?.id);
    }
    if (status === 'approved') return { events: [decisionEvent], target };
    if (status === 'cancelled') return this.skipStep(run, step, { reason: 'approval cancelled (alert resolved)', approvalId: latest.id });
    if (status === 'rejected') {
      await this.abortRun(run, steps, 'aborted', `approval ${latest.id} for step ${def.id} rejected by ${latest.decided_by ?? 'someone'}`, latest.decided_by ?? 'system');
      return 'finished';
    }
    // expired
    if (def.onTimeout === 'skip') return this.skipStep(run, step, { reason: 'approval expired (on_timeout: skip)', approvalId: latest.id });
    if (def.onTimeout === 'escalate' && latest.round === 1 && def.escalateTo.length > 0) {
      return this.requestApproval(run, def, { ...decision, approvers: def.escalateTo }, decisionEvent, params, 2, def.escalateTo);
    }
    await this.abortRun(run, steps, 'aborted', `approval for step ${def.id} expired`, 'system');
    return 'finished';
  }

  private async requestApproval(
    run: RunRow,
    def: PlaybookStep,
    decision: Decision,
    decisionEvent: NewEvent,
    params: unknown,
    round: number,
    escalatedTo: string[] | undefined,
    existingId?: string,
  ): Promise<StepOutcome> {
    const events: NewEvent[] = [];
    await this.inRun(run.id, async (client) => {
      if (!existingId) {
        const approvalId = crypto.randomUUID();
        const approvers = escalatedTo ?? decision.approvers;
        const minApprovals = Math.max(1, decision.min_approvals || 1);
        const request = { playbook: run.playbook, stepId: def.id, action: def.action, impact: def.impact, params, reasons: decision.reasons, dryRun: run.dry_run };
        const inserted = await client.query(Q.INSERT_APPROVAL, [
          approvalId, run.id, def.id, round, JSON.stringify(approvers), minApprovals, JSON.stringify(decision.reasons), JSON.stringify(request), def.onTimeout, def.approvalTimeoutMs,
        ]);
        if (inserted.rowCount === 1) {
          events.push(decisionEvent);
          if (round > 1) events.push({ kind: 'approval.escalated', actor: 'system', data: { stepId: def.id, approvalId, round, approvers } });
          events.push({
            kind: 'approval.requested',
            actor: 'policy',
            data: { approvalId, stepId: def.id, action: def.action, params, approvers, minApprovals, reasons: decision.reasons, timeoutMs: def.approvalTimeoutMs, onTimeout: def.onTimeout },
          });
          await this.record(client, run.id, events);
        }
      }
      await this.release(client, run.id, new Date(this.deps.now() + def.approvalTimeoutMs), 'waiting');
    });
    this.emitted(run.id, events);
    return 'park';
  }

  private async denyStep(run: RunRow, steps: StepRow[], step: StepRow, def: PlaybookStep, decisionEvent: NewEvent, reasons: string[]): Promise<StepOutcome> {
    const events: NewEvent[] = [decisionEvent, { kind: 'step.denied', actor: 'policy', data: { stepId: def.id, reasons } }];
    await this.inRun(run.id, async (client) => {
      await client.query(Q.UPDATE_STEP, [run.id, step.step_id, 'denied', null, null, JSON.stringify({ message: 'denied by policy', reasons }), null, null, false]);
      await this.record(client, run.id, events);
    });
    this.emitted(run.id, events);
    const refreshed = await this.loadSteps(run.id);
    await this.abortRun(run, refreshed, 'failed', `policy denied step ${def.id}: ${reasons.join('; ') || 'no reason given'}`, 'policy');
    return 'finished';
  }

  // ---------- execution ----------

  private async executeStep(
    run: RunRow,
    steps: StepRow[],
    step: StepRow,
    def: PlaybookStep,
    action: ActionDefinition,
    input: unknown,
    signal: AbortSignal,
    log: Logger,
    clearing: Clearance = NOT_CLEARED_NOW,
  ): Promise<StepOutcome> {
    // The step row mirrors its latest attempt (both change in one transaction): `running` with
    // attempts = n means attempt n has no recorded outcome, so a crash cut it short and it is
    // driven again with the same key; otherwise attempt n failed (or there is none) and n + 1 is next.
    const inFlight = step.attempts > 0 && step.status === 'running';
    const attempt = inFlight ? step.attempts : step.attempts + 1;
    const idempotencyKey = `${run.id}:${def.id}:${attempt}`;
    const polling = step.poll_state !== null && step.poll_state !== undefined && inFlight;
    const startEvents: NewEvent[] = [...clearing.events];
    if (!inFlight) {
      startEvents.push({ kind: 'step.started', actor: 'system', data: { stepId: def.id, action: def.action, attempt, idempotencyKey, params: this.deps.timeline.redact(input) } });
    } else if (!polling) {
      startEvents.push({ kind: 'step.resumed', actor: 'system', data: { stepId: def.id, attempt, idempotencyKey, reason: 'the attempt was cut short (worker stopped); driving it again with the same key' } });
    }
    let stepStartedAt = step.started_at?.getTime() ?? this.deps.now();
    if (startEvents.length > 0) {
      // The policy decision that cleared the step (if it was just made) commits with the attempt's start.
      await this.inRun(run.id, async (client) => {
        await client.query(Q.INSERT_ATTEMPT, [run.id, def.id, attempt, idempotencyKey, this.workerId]);
        await client.query(Q.UPDATE_STEP, [run.id, def.id, 'running', attempt, null, null, step.poll_state ?? null, clearing.target, clearing.events.length > 0]);
        await this.record(client, run.id, startEvents);
      });
      this.emitted(run.id, startEvents);
      if (!step.started_at) stepStartedAt = this.deps.now();
    }

    const startedAt = this.deps.now();
    let result: Awaited<ReturnType<ActionDefinition['run']>>;
    try {
      const simulated = simulation(run.dry_run, run.dry_run_options, action, input);
      if (simulated) {
        // Dry run: record the fully rendered call instead of making it, and answer with the stub.
        const wouldCall = this.deps.timeline.redact(describeSimulated(action, input, idempotencyKey));
        const output = stubbedOutput(def.action, def.id, input, wouldCall, run.dry_run_options);
        const wouldEvents: NewEvent[] = [{ kind: 'step.would_call', actor: 'system', data: { stepId: def.id, action: def.action, attempt, reason: simulated.kind, request: wouldCall, response: output.response } }];
        await this.inRun(run.id, (client) => this.record(client, run.id, wouldEvents));
        this.emitted(run.id, wouldEvents);
        checkStubStatus(def.action, input, run.dry_run_options);
        result = { kind: 'done', output };
      } else {
        result = await this.runAction(action, input, def, { runId: run.id, attempt, idempotencyKey, state: step.poll_state ?? undefined, stepStartedAt, dryRun: run.dry_run }, signal, log);
      }
    } catch (err) {
      if (signal.aborted && !(err instanceof StepTimeoutError)) {
        // Lease lost or abort requested: the next turn (ours or another worker's) decides; record nothing as a failure.
        const run2 = await this.loadRun(run.id);
        if (!run2) throw new LeaseLostError();
        if (run2.abort_requested_at) {
          await this.inRun(run.id, async (client) => {
            await client.query(Q.FINISH_ATTEMPT, [run.id, def.id, attempt, 'failed', JSON.stringify({ message: 'interrupted: run aborted' })]);
          });
          return 'next';
        }
      }
      return this.failStep(run, steps, step, def, err, attempt, Date.now() - startedAt);
    }

    if (result.kind === 'poll') {
      const events: NewEvent[] = [{ kind: 'step.polled', actor: 'system', data: { stepId: def.id, attempt, progress: result.progress ?? null, nextPollInMs: result.afterMs } }];
      await this.inRun(run.id, async (client) => {
        await client.query(Q.UPDATE_STEP, [run.id, def.id, 'running', attempt, null, null, JSON.stringify(result.state ?? {}), null, false]);
        await this.record(client, run.id, events);
        await this.release(client, run.id, new Date(this.deps.now() + Math.max(0, result.afterMs)), 'running');
      });
      this.emitted(run.id, events);
      return 'park';
    }

    const output = boundedOutput(this.deps.timeline.redact(result.output));
    const events: NewEvent[] = [{ kind: 'step.succeeded', actor: 'system', data: { stepId: def.id, action: def.action, attempt, durationMs: this.deps.now() - stepStartedAt, output } }];
    await this.inRun(run.id, async (client) => {
      await client.query(Q.FINISH_ATTEMPT, [run.id, def.id, attempt, 'succeeded', null]);
      await client.query(Q.UPDATE_STEP, [run.id, def.id, 'succeeded', attempt, JSON.stringify(output), null, null, null, false]);
      await this.record(client, run.id, events);
    });
    this.emitted(run.id, events);
    return 'next';
  }

  private async runAction(
    action: ActionDefinition,
    input: unknown,
    def: { id: string; timeoutMs?: number },
    attempt: { runId: string; attempt: number; idempotencyKey: string; state: unknown; stepStartedAt: number; dryRun: boolean },
    parent: AbortSignal,
    log: Logger,
  ): Promise<Awaited<ReturnType<ActionDefinition['run']>>> {
    const controller = new AbortController();
    const onParentAbort = () => controller.abort(parent.reason);
    if (parent.aborted) controller.abort(parent.reason);
    parent.addEventListener('abort', onParentAbort, { once: true });
    const timer = def.timeoutMs ? setTimeout(() => controller.abort(new StepTimeoutError(def.id, def.timeoutMs!)), def.timeoutMs) : undefined;
    // Even an action that ignores its signal cannot hold the run past its timeout.
    const aborted = new Promise<never>((_, reject) => {
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason instanceof Error ? controller.signal.reason : new ActionError('aborted')), { once: true });
    });
    aborted.catch(() => {});
    try {
      return await Promise.race([
        action.run(input, {
          runId: attempt.runId,
          stepId: def.id,
          attempt: attempt.attempt,
          idempotencyKey: attempt.idempotencyKey,
          signal: controller.signal,
          logger: log.child({ stepId: def.id, attempt: attempt.attempt }),
          httpAllow: this.deps.httpAllow,
          playbooksDir: this.deps.playbooksDir,
          state: attempt.state,
          stepStartedAt: attempt.stepStartedAt,
          now: this.deps.now,
          dryRun: attempt.dryRun,
        }),
        aborted,
      ]);
    } finally {
      if (timer) clearTimeout(timer);
      parent.removeEventListener('abort', onParentAbort);
    }
  }

  private async failStep(run: RunRow, steps: StepRow[], step: StepRow, def: PlaybookStep, err: unknown, attempt: number, durationMs?: number): Promise<StepOutcome> {
    // Redacted once, here: the same info goes to the step and attempt rows, the timeline and the run's outcome.
    const info = this.deps.timeline.redact(errorInfo(err)) as Record<string, unknown>;
    const retryable = err instanceof ActionError ? err.retryable : !(err instanceof ValidationError);
    if (attempt > 0 && retryable && attempt < def.retry.attempts) {
      const delay = backoffDelay(attempt, def.retry.backoffMs, def.retry.maxBackoffMs);
      const nextAttemptAt = new Date(this.deps.now() + delay);
      const events: NewEvent[] = [{ kind: 'step.retrying', actor: 'system', data: { stepId: def.id, attempt, error: info, nextAttempt: attempt + 1, nextAttemptAt: nextAttemptAt.toISOString(), ...(durationMs !== undefined && { durationMs }) } }];
      await this.inRun(run.id, async (client) => {
        await client.query(Q.FINISH_ATTEMPT, [run.id, def.id, attempt, 'failed', JSON.stringify(info)]);
        await client.query(Q.UPDATE_STEP, [run.id, def.id, 'pending', attempt, null, JSON.stringify(info), null, null, false]);
        await this.record(client, run.id, events);
        await this.release(client, run.id, nextAttemptAt, 'running');
      });
      this.emitted(run.id, events);
      return 'park';
    }
    const events: NewEvent[] = [{ kind: 'step.failed', actor: 'system', data: { stepId: def.id, action: def.action, attempt, error: info, onFailure: def.onFailure, ...(durationMs !== undefined && { durationMs }) } }];
    await this.inRun(run.id, async (client) => {
      if (attempt > 0) await client.query(Q.FINISH_ATTEMPT, [run.id, def.id, attempt, 'failed', JSON.stringify(info)]);
      await client.query(Q.UPDATE_STEP, [run.id, def.id, 'failed', attempt > 0 ? attempt : null, null, JSON.stringify(info), null, null, false]);
      await this.record(client, run.id, events);
    });
    this.emitted(run.id, events);
    if (def.onFailure === 'continue') return 'next';
    await this.abortRun(run, await this.loadSteps(run.id), 'failed', `step ${def.id} failed: ${String(info.message)}`, 'system');
    return 'finished';
  }

  // ---------- abort, compensation, finish ----------

  /** Cancel approvals, run `compensate` of completed steps newest first, then finish. */
  private async abortRun(run: RunRow, steps: StepRow[], status: 'failed' | 'aborted' | 'cancelled', reason: string, actor: string): Promise<void> {
    const cancelled: NewEvent[] = [];
    await this.inRun(run.id, async (client) => {
      const { rows } = await client.query<{ id: string; step_id: string }>(Q.CANCEL_RUN_APPROVALS, [run.id, actor]);
      for (const a of rows) cancelled.push({ kind: 'approval.cancelled', actor: 'system', data: { approvalId: a.id, stepId: a.step_id, reason } });
      if (cancelled.length > 0) await this.record(client, run.id, cancelled);
    });
    const vars = this.variables(run, steps, true);
    const toCompensate = steps
      .filter((s) => (s.status === 'succeeded' || s.compensation_status === 'running') && !['succeeded', 'failed', 'skipped'].includes(s.compensation_status ?? ''))
      .map((s) => ({ row: s, def: run.definition.steps.find((d) => d.id === s.step_id) }))
      .filter((s): s is { row: StepRow; def: PlaybookStep } => Boolean(s.def?.compensate))
      .sort((a, b) => b.row.position - a.row.position);
    const compensated: string[] = [];
    const compensationFailed: string[] = [];
    for (const { row, def } of toCompensate) {
      const ok = await this.compensate(run, row, def, vars);
      (ok ? compensated : compensationFailed).push(def.id);
    }
    await this.finish(run, status, { reason, ...(compensated.length > 0 && { compensated }), ...(compensationFailed.length > 0 && { compensationFailed }) }, actor);
  }

  private async compensate(run: RunRow, row: StepRow, def: PlaybookStep, vars: Record<string, unknown>): Promise<boolean> {
    const comp = def.compensate!;
    const idempotencyKey = `${run.id}:${def.id}:compensate`;
    const action = this.deps.actions.get(comp.action);
    const started: NewEvent[] = [{ kind: 'compensation.started', actor: 'system', data: { stepId: def.id, action: comp.action, idempotencyKey } }];
    await this.inRun(run.id, async (client) => {
      await client.query(Q.SET_COMPENSATION, [run.id, def.id, 'running']);
      await this.record(client, run.id, started);
    });
    this.emitted(run.id, started);
    let outcome: NewEvent;
    let ok = false;
    try {
      if (!action) throw new ActionError(`unknown action ${comp.action}`, { retryable: false });
      const input = parseActionInput(action, renderValue(comp.with, vars, contextsOf(action.input)));
      let output: unknown;
      const simulated = simulation(run.dry_run, run.dry_run_options, action, input);
      if (simulated) {
        output = { dryRun: true, reason: simulated.kind, wouldCall: this.deps.timeline.redact(describeSimulated(action, input, idempotencyKey)) };
      } else {
        const result = await this.runAction(action, input, { id: def.id, timeoutMs: def.timeoutMs ?? DEFAULT_COMPENSATION_TIMEOUT_MS }, { runId: run.id, attempt: 1, idempotencyKey, state: undefined, stepStartedAt: this.deps.now(), dryRun: run.dry_run }, new AbortController().signal, this.deps.logger.child({ runId: run.id }));
        if (result.kind === 'poll') throw new ActionError('compensation actions cannot wait or poll', { retryable: false });
        output = result.output;
      }
      ok = true;
      outcome = { kind: 'compensation.succeeded', actor: 'system', data: { stepId: def.id, action: comp.action, output: boundedOutput(this.deps.timeline.redact(output)) } };
    } catch (err) {
      outcome = { kind: 'compensation.failed', actor: 'system', data: { stepId: def.id, action: comp.action, error: errorInfo(err) } };
    }
    await this.inRun(run.id, async (client) => {
      await client.query(Q.SET_COMPENSATION, [run.id, def.id, ok ? 'succeeded' : 'failed']);
      await this.record(client, run.id, [outcome]);
    });
    this.emitted(run.id, [outcome]);
    void row;
    return ok;
  }

  private async finish(run: RunRow, status: RunStatus, outcome: Record<string, unknown>, actor: string): Promise<void> {
    const startedAt = (run.started_at ?? run.created_at).getTime();
    const events: NewEvent[] = [{ kind: `run.${status}`, actor, data: { ...outcome, durationMs: this.deps.now() - startedAt } }];
    await this.inRun(run.id, async (client) => {
      await client.query(Q.SKIP_PENDING_STEPS, [run.id]);
      await client.query(Q.FINISH_RUN, [run.id, this.workerId, status, JSON.stringify(this.deps.timeline.redact(outcome))]);
      await this.record(client, run.id, events);
      if (run.concurrency_key) {
        const woken = await client.query(Q.WAKE_QUEUED_WITH_KEY, [run.concurrency_key]);
        if ((woken.rowCount ?? 0) > 0) await client.query(Q.NOTIFY_RUNNABLE, ['slot']);
      }
    });
    this.emitted(run.id, events);
  }
}
