import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { ActionRegistry } from '../actions/index.js';
import type { Secrets } from '../config/index.js';
import { ConflictError, NotFoundError, ValidationError } from '../errors.js';
import type { Alert, PlannedRun } from '../ingest/index.js';
import { matchesAlert, type Playbook } from '../playbooks/index.js';
import type { PolicyGate } from '../policy/types.js';
import { withTransaction, type Pool } from '../store/index.js';
import type { NewEvent, Timeline } from '../timeline/index.js';
import { answerApproval, expireDueApprovals, type AnswerInput, type AnswerResult } from './approvals.js';
import { RunExecutor } from './executor.js';
import { planRun } from './plan.js';
import * as Q from './queries.js';
import type { DryRunOptions } from './types.js';
import { Worker } from './worker.js';

export { getRun, listRuns, listAlerts, listPendingApprovals, approvalRunId, type RunView, type StepView, type ApprovalView } from './read.js';
export { planRun, runDefinition } from './plan.js';
export { backoffDelay } from './backoff.js';
export type { AnswerInput, AnswerResult } from './approvals.js';
export type { RunStatus, StepStatus, RunTrigger, RunDefinition, DryRunOptions, DryRunStub } from './types.js';

export interface EngineOptions {
  pool: Pool;
  databaseUrl: string;
  timeline: Timeline;
  actions: ActionRegistry;
  /** Read on every decision, so a reloaded policy takes effect at once. */
  policy: () => PolicyGate;
  /** The current playbooks (reloaded by the caller when files change). */
  playbooks: () => Playbook[];
  logger: Logger;
  secrets: Secrets;
  httpAllow: readonly string[];
  playbooksDir: string;
  defaultChannel?: string;
  /** Runs driven at once by this process; 0 = this process only serves HTTP. */
  workers: number;
  leaseMs?: number;
  pollMs?: number;
  now?: () => number;
  onTakeover?: () => void;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

type EventListener = (runId: string, events: NewEvent[]) => void;

export interface StartRunInput {
  playbook: string;
  params?: Record<string, unknown>;
  /** null only for a dry run replaying an alert: it runs as the alert's run would (`dryRunOptions.requestedBy` says who asked). */
  startedBy: string | null;
  /** 'alert' only for dry runs (a replayed alert); real alert runs come from ingest. */
  trigger?: 'manual' | 'schedule' | 'alert';
  dryRun?: boolean;
  alert?: Alert | null;
  /** A real run's episode. A dry run names the episode it replays in `dryRunOptions.episodeId` instead. */
  episodeId?: number | null;
  /** Exactly-once key (schedule ticks, client retries). */
  dedupKey?: string;
  /** Dry runs only: how to simulate (stub, noGather, who asked). */
  dryRunOptions?: DryRunOptions;
  /** Written after the run's first events, in the transaction that creates it (the access decision that let it start). */
  events?: NewEvent[];
  /** Dry runs only: this playbook (sent with the request, e.g. `replay --diff`) instead of the catalog's. */
  definition?: Playbook;
}

/** The durable run engine: plans runs, drives them with workers, answers approvals and aborts. */
export class Engine {
  private worker: Worker | undefined;
  private expiry: ScheduledTask | undefined;
  private readonly listeners: EventListener[] = [];
  private readonly now: () => number;
  private readonly policyProxy: PolicyGate;

  constructor(private readonly options: EngineOptions) {
    this.now = options.now ?? Date.now;
    const current = () => options.policy();
    this.policyProxy = {
      decide: (input) => current().decide(input),
      approve: (input) => current().approve(input),
      authorize: (input) => current().authorize(input),
      status: () => current().status(),
      close: () => current().close(),
    };
  }

  /** Called after every committed batch of timeline events (Slack, console live updates). */
  onEvent(listener: EventListener): void {
    this.listeners.push(listener);
  }

  private emit(runId: string, events: NewEvent[]): void {
    for (const l of this.listeners) l(runId, events);
  }

  /** Runs to start for a firing alert: one per matching playbook. Used by ingest inside its statement. */
  planAlertRuns = (alert: Alert): PlannedRun[] =>
    this.options
      .playbooks()
      .filter((p) => matchesAlert(p, alert))
      .map((p) => planRun(p, { trigger: 'alert', alert, defaultChannel: this.options.defaultChannel }));

  start(): void {
    if (this.options.workers <= 0 || this.worker) return;
    this.worker = new Worker({
      pool: this.options.pool,
      databaseUrl: this.options.databaseUrl,
      timeline: this.options.timeline,
      logger: this.options.logger,
      concurrency: this.options.workers,
      leaseMs: this.options.leaseMs ?? 15_000,
      pollMs: this.options.pollMs ?? 500,
      onEvent: (runId, events) => this.emit(runId, events),
      onTakeover: this.options.onTakeover,
      makeExecutor: (workerId) =>
        new RunExecutor(
          {
            pool: this.options.pool,
            timeline: this.options.timeline,
            actions: this.options.actions,
            policy: this.policyProxy,
            logger: this.options.logger,
            secrets: this.options.secrets,
            httpAllow: this.options.httpAllow,
            playbooksDir: this.options.playbooksDir,
            now: this.now,
            onEvent: (runId, events) => this.emit(runId, events),
          },
          workerId,
        ),
    });
    this.worker.start();
    // Approval deadlines live in the database (approvals.expires_at); this cron job only asks it, every
    // second, which have passed. Every replica with workers sweeps; EXPIRE_APPROVAL makes that safe.
    this.expiry = cron.schedule('* * * * * *', () => this.sweepExpiredApprovals(), {
      name: 'firebreak-approval-expiry',
      noOverlap: true,
      suppressMissedWarning: true,
    });
  }

  /** Expire approvals past their deadline (on_timeout is applied by the run's worker). Scheduled by start(). */
  async sweepExpiredApprovals(): Promise<number> {
    try {
      const expired = await expireDueApprovals({ pool: this.options.pool, timeline: this.options.timeline }, (runId, events) => this.emit(runId, events));
      if (expired > 0) this.poke();
      return expired;
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, 'approval expiry sweep failed; retrying next second');
      return 0;
    }
  }

  async stop(graceMs?: number): Promise<void> {
    await this.expiry?.destroy();
    this.expiry = undefined;
    await this.worker?.stop(graceMs);
    this.worker = undefined;
  }

  poke(): void {
    this.worker?.poke();
  }

  /** The action registry (to check playbooks sent with a dry-run request). */
  get actions(): ActionRegistry {
    return this.options.actions;
  }

  /** Playbooks (the catalog, or `playbooks`) an alert would start a run of. */
  matchingPlaybooks(alert: Alert, playbooks: readonly Playbook[] = this.options.playbooks()): Playbook[] {
    return playbooks.filter((p) => matchesAlert(p, alert));
  }

  findPlaybook(name: string): Playbook {
    const playbook = this.options.playbooks().find((p) => p.name === name);
    if (!playbook) throw new NotFoundError(`playbook ${name} not found (known: ${this.options.playbooks().map((p) => p.name).join(', ') || 'none'})`);
    return playbook;
  }

  /** Start a run by hand (API, CLI, Slack) or from a schedule tick. Idempotent on `dedupKey`. */
  async startRun(input: StartRunInput): Promise<{ runId: string; created: boolean }> {
    const dryRun = input.dryRun ?? false;
    if (!dryRun && (input.definition || input.dryRunOptions || input.trigger === 'alert' || input.startedBy === null)) {
      throw new ValidationError('only a dry run can use a sent playbook, dry-run options, or replay an alert', [{ path: 'dryRun', message: 'must be true' }]);
    }
    const playbook = input.definition ?? this.findPlaybook(input.playbook);
    const trigger = input.trigger ?? 'manual';
    const plan = planRun(playbook, {
      trigger,
      alert: input.alert ?? null,
      params: input.params ?? {},
      startedBy: input.startedBy,
      dryRun,
      defaultChannel: this.options.defaultChannel,
    });
    if (dryRun) dryRunPlan(plan, input);
    const result = await withTransaction(this.options.pool, async (client) => {
      const inserted = await client.query(Q.INSERT_MANUAL_RUN, [
        plan.runId,
        plan.playbook,
        JSON.stringify(plan.definition),
        plan.playbookHash,
        trigger,
        input.startedBy,
        input.alert ? JSON.stringify(this.options.timeline.redact(input.alert)) : null,
        JSON.stringify(this.options.timeline.redact(input.params ?? {})),
        dryRun,
        input.dedupKey ?? null,
        plan.concurrencyKey,
        plan.concurrencyLimit,
        plan.channel,
        dryRun ? null : (input.episodeId ?? null),
        dryRun && input.dryRunOptions ? JSON.stringify(this.options.timeline.redact(input.dryRunOptions)) : null,
      ]);
      if (inserted.rowCount === 0) {
        const existing = await client.query<{ id: string }>(Q.RUN_BY_DEDUP_KEY, [input.dedupKey]);
        return { runId: existing.rows[0]!.id, created: false };
      }
      await this.options.timeline.appendToRun(client, plan.runId, ...plan.genesis, ...(input.events ?? []));
      await client.query(Q.NOTIFY_RUNNABLE, ['manual']);
      return { runId: plan.runId, created: true };
    });
    if (result.created) this.emit(result.runId, [...plan.genesis, ...(input.events ?? [])]);
    this.poke();
    return result;
  }

  /** Ask a run to stop; its worker compensates completed steps. A queued run that never started just ends. */
  async abortRun(runId: string, actor: string, reason?: string): Promise<{ status: 'aborted' | 'abort_requested' }> {
    if (!UUID.test(runId)) throw new NotFoundError(`run ${runId} not found`);
    const why = reason?.trim() || `aborted by ${actor}`;
    const events: NewEvent[] = [];
    const status = await withTransaction(this.options.pool, async (client) => {
      const exists = await client.query<{ status: string }>(Q.RUN_STATUS, [runId]);
      if (!exists.rows[0]) throw new NotFoundError(`run ${runId} not found`);
      await this.options.timeline.lockRun(client, runId);
      const aborted = await client.query(Q.ABORT_QUEUED, [runId, actor, why]);
      if (aborted.rowCount === 1) {
        await client.query(Q.SKIP_PENDING_STEPS, [runId]);
        events.push({ kind: 'run.aborted', actor, data: { reason: why, neverStarted: true } });
        await this.options.timeline.appendToRun(client, runId, ...events);
        return 'aborted' as const;
      }
      const requested = await client.query(Q.REQUEST_ABORT, [runId, actor, why]);
      if (requested.rowCount === 0) throw new ConflictError(`run ${runId} already finished (${exists.rows[0].status})`);
      const cancelled = await client.query<{ id: string; step_id: string }>(Q.CANCEL_RUN_APPROVALS, [runId, actor]);
      events.push({ kind: 'run.abort_requested', actor, data: { reason: why } });
      for (const a of cancelled.rows) events.push({ kind: 'approval.cancelled', actor, data: { approvalId: a.id, stepId: a.step_id, reason: why } });
      await this.options.timeline.appendToRun(client, runId, ...events);
      await client.query(Q.NOTIFY_RUNNABLE, ['abort']);
      return 'abort_requested' as const;
    });
    this.emit(runId, events);
    this.poke();
    return { status };
  }

  async answerApproval(input: AnswerInput): Promise<AnswerResult> {
    if (input.decision !== 'approve' && input.decision !== 'reject') {
      throw new ValidationError('decision must be "approve" or "reject"', [{ path: 'decision', message: 'must be "approve" or "reject"' }]);
    }
    const { result, events } = await answerApproval({ pool: this.options.pool, timeline: this.options.timeline, policy: this.policyProxy, now: this.now }, input);
    this.emit(result.runId, events);
    this.poke();
    return result;
  }
}

/**
 * A dry run holds no concurrency slot (it must never delay a real run, nor
 * queue behind its own replays), and its first event says who asked and how
 * it simulates.
 */
function dryRunPlan(plan: PlannedRun, input: StartRunInput): void {
  const wouldKey = plan.concurrencyKey;
  plan.concurrencyKey = null;
  plan.concurrencyLimit = null;
  const options = input.dryRunOptions;
  plan.genesis = plan.genesis.map((event, i) => {
    if (i !== 0) return event;
    const { concurrencyKey: _key, concurrencyLimit: _limit, ...data } = event.data as Record<string, unknown>;
    return {
      ...event,
      actor: input.startedBy ?? options?.requestedBy ?? event.actor,
      data: {
        ...data,
        ...(wouldKey && { concurrency: `not enforced in a dry run (a real run would hold ${wouldKey})` }),
        ...(options && { dryRunOptions: options }),
      },
    };
  });
}
