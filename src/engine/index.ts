import type { Logger } from 'pino';
import type { ActionRegistry } from '../actions/index.js';
import type { Secrets } from '../config/index.js';
import { checkStorableText, NotFoundError, ValidationError } from '../errors.js';
import type { Alert } from '../ingest/index.js';
import { matchesAlert, type Playbook } from '../playbooks/index.js';
import type { PolicyGate } from '../policy/types.js';
import { runStatement, withTransaction, type DatabaseClock, type Pool, type PoolClient, type Queryable } from '../store/index.js';
import type { NewEvent, Timeline } from '../timeline/index.js';
import { answerApproval, type AnswerInput, type AnswerResult } from './approvals.js';
import { RunExecutor } from './executor.js';
import { planRun, runDefinition } from './plan.js';
import * as Q from './queries.js';
import { RunTx, withRunTx } from './run-tx.js';
import { cancel, heldEvent, requestAbort, resolveAlert, retry, type AbortOutcome, type RetryResult } from './transitions.js';
import { findStuckRuns, StuckMonitor, type StuckInfo } from './stuck.js';
import { listRunsByIds, type RunView } from './read.js';
import type { DryRunOptions, EngineRails, PlannedRun, RailsPreview } from './types.js';
import { Worker } from './worker.js';

export { getRun, listRuns, listAlerts, listPendingApprovals, approvalRunId, type RunView, type StepView, type ApprovalView } from './read.js';
export { planRun, runDefinition } from './plan.js';
export { listRevisions, getRevision, diffRevisions, revisionText, type Revision, type RevisionSummary } from './revisions.js';
export { backoffDelay } from './backoff.js';
export type { AnswerInput, AnswerResult } from './approvals.js';
export type { RunStatus, StepStatus, RunTrigger, RunDefinition, DryRunOptions, DryRunStub, PlannedRun, EngineRails, HoldingPause, RailsPreview, RunRow, RunEnd } from './types.js';
export { QUEUED_SAFETY_MS, RETRYABLE_STATUSES, type RetryResult } from './transitions.js';
export { DEFAULT_STEP_TIMEOUT_MS, type StuckInfo } from './stuck.js';

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
  onTakeover?: () => void;
  /** The automation safety rails (kill switch, circuit breaker): src/rails. */
  rails?: EngineRails;
  /** Told when automation is paused or resumed somewhere (another replica too). */
  onAutomationChange?: () => void;
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

/** An episode resolved by a notification, with the runs it started before. */
export interface ResolvedEpisode {
  id: number;
  fingerprint: string;
  startsAt: string;
  existingRuns: string[];
}

/** What ingest asks of the engine inside its own statement / transaction. */
export interface RunHooks {
  /** Runs to start for a firing alert: one per matching playbook (revisions stored). */
  plan(alert: Alert): Promise<PlannedRun[]>;
  /**
   * Episodes resolved: tell their runs (timeline, approvals, `on_resolved`), in
   * the caller's transaction. Returns the events written, for `emit` after commit.
   */
  resolved(client: PoolClient, episodes: ResolvedEpisode[]): Promise<Array<{ runId: string; events: NewEvent[] }>>;
  /** Called after ingest committed (events of resolves: Slack, console, metrics). */
  emit(runId: string, events: NewEvent[]): void;
}

/** The durable run engine: plans runs, drives them with workers, answers approvals and aborts. */
export class Engine {
  private worker: Worker | undefined;
  private stuckMonitor: StuckMonitor | undefined;
  private readonly listeners: EventListener[] = [];
  private readonly policyProxy: PolicyGate;
  private readonly clock: DatabaseClock;
  /** Revision hashes of playbooks already stored (a Playbook object is one content). */
  private readonly revisions = new WeakMap<Playbook, string>();

  constructor(private readonly options: EngineOptions) {
    this.clock = options.timeline.clock;
    const current = () => options.policy();
    this.policyProxy = {
      decide: (input) => current().decide(input),
      approve: (input) => current().approve(input),
      authorize: (input) => current().authorize(input),
      status: () => current().status(),
      close: () => current().close(),
    };
  }

  /** Called after every committed batch of timeline events (Slack, console live updates, metrics). */
  onEvent(listener: EventListener): void {
    this.listeners.push(listener);
  }

  private emit = (runId: string, events: NewEvent[]): void => {
    for (const l of this.listeners) {
      try {
        l(runId, events);
      } catch (err) {
        this.options.logger.warn({ runId, err: (err as Error).message }, 'event listener failed');
      }
    }
  };

  /**
   * Store playbook definitions once per content (playbook_revisions) and
   * remember their revision hashes. Cheap when all are known.
   */
  async storeRevisions(playbooks: readonly Playbook[], db: Queryable = this.options.pool, options: { sent?: boolean } = {}): Promise<Map<Playbook, string>> {
    const unknown = playbooks.filter((p) => !this.revisions.has(p));
    if (unknown.length > 0) {
      // A playbook sent with a dry-run request has no file here: its revision is not (yet) one the catalog loaded.
      const input = unknown.map((p) => ({ name: p.name, definition: runDefinition(p), file: options.sent ? null : p.file, source: p.source ?? null }));
      const { rows } = await runStatement<{ name: string; hash: string }>(db, Q.STORE_REVISIONS, [JSON.stringify(input)]);
      unknown.forEach((p, i) => this.revisions.set(p, rows[i]!.hash));
    }
    return new Map(playbooks.map((p) => [p, this.revisions.get(p)!]));
  }

  /** The hooks ingest calls (planning alert runs, resolves). */
  readonly ingestHooks: RunHooks = {
    plan: async (alert) => {
      const matching = this.options.playbooks().filter((p) => matchesAlert(p, alert));
      if (matching.length === 0) return [];
      const revisions = await this.storeRevisions(matching);
      return matching.map((p) => planRun(p, { revision: revisions.get(p)!, trigger: 'alert', alert, defaultChannel: this.options.defaultChannel }));
    },
    resolved: async (client, episodes) => {
      const written: Array<{ runId: string; events: NewEvent[] }> = [];
      for (const episode of episodes) {
        for (const runId of episode.existingRuns) {
          const state = (await runStatement<{ status: string; concurrency_key: string | null; on_resolved: string | null }>(client, Q.RUN_STATE, [runId])).rows[0];
          if (!state) continue;
          const tx = await RunTx.open(client, this.options.timeline, runId, state.concurrency_key);
          await resolveAlert(tx, { status: state.status, onResolved: state.on_resolved ?? 'continue', key: state.concurrency_key }, episode);
          written.push({ runId, events: tx.events });
        }
      }
      return written;
    },
    emit: (runId, events) => this.emit(runId, events),
  };

  /** How long a lease lasts (stuck-run thresholds count it in). */
  get leaseMs(): number {
    return this.options.leaseMs ?? 15_000;
  }

  start(): void {
    // Every replica watches for stuck runs (API-only ones too): the database decides who reports a stall.
    if (!this.stuckMonitor) {
      this.stuckMonitor = new StuckMonitor({ pool: this.options.pool, timeline: this.options.timeline, leaseMs: this.leaseMs, logger: this.options.logger.child({ component: 'stuck' }), emit: this.emit });
      this.stuckMonitor.start();
    }
    if (this.options.workers <= 0 || this.worker) return;
    this.worker = new Worker({
      pool: this.options.pool,
      databaseUrl: this.options.databaseUrl,
      clock: this.clock,
      logger: this.options.logger,
      concurrency: this.options.workers,
      leaseMs: this.options.leaseMs ?? 15_000,
      pollMs: this.options.pollMs ?? 500,
      onTakeover: this.options.onTakeover,
      ...(this.options.onAutomationChange && { onAutomationChange: this.options.onAutomationChange }),
      makeExecutor: (workerId) =>
        new RunExecutor(
          {
            pool: this.options.pool,
            timeline: this.options.timeline,
            clock: this.clock,
            actions: this.options.actions,
            policy: this.policyProxy,
            logger: this.options.logger,
            secrets: this.options.secrets,
            httpAllow: this.options.httpAllow,
            playbooksDir: this.options.playbooksDir,
            onEvent: this.emit,
            ...(this.options.rails && { rails: this.options.rails }),
          },
          workerId,
        ),
    });
    this.worker.start();
  }

  /** Stop the workers: they finish (or, past `graceMs`, cut short and wait for) their runs, then give the leases back. */
  async stop(graceMs?: number): Promise<void> {
    await this.stuckMonitor?.stop();
    this.stuckMonitor = undefined;
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

  /** The catalog's playbooks with their current revisions (stored if new). */
  async currentPlaybooks(): Promise<Array<{ playbook: Playbook; revision: string }>> {
    const playbooks = this.options.playbooks();
    const revisions = await this.storeRevisions(playbooks);
    return playbooks.map((playbook) => ({ playbook, revision: revisions.get(playbook)! }));
  }

  /** Whether a playbook of this name is loaded. */
  hasPlaybook(name: string): boolean {
    return this.options.playbooks().some((p) => p.name === name);
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
    const revision = (await this.storeRevisions([playbook], this.options.pool, { sent: input.definition !== undefined })).get(playbook)!;
    const plan = planRun(playbook, {
      revision,
      trigger,
      alert: input.alert ?? null,
      params: input.params ?? {},
      startedBy: input.startedBy,
      dryRun,
      defaultChannel: this.options.defaultChannel,
    });
    if (dryRun) dryRunPlan(plan, input, await this.options.rails?.preview(plan, input.alert ?? null));
    const timeline = this.options.timeline;
    // Started by hand while automation is paused: it waits for a resume, and its timeline says why from the start.
    const pause = dryRun ? undefined : await this.options.rails?.paused(playbook.name);
    const held: NewEvent[] = pause ? [heldEvent(pause, null)] : [];
    const result = await withTransaction(this.options.pool, async (client) => {
      const inserted = await runStatement(client, Q.INSERT_MANUAL_RUN, [
        plan.runId,
        plan.playbook,
        plan.revision,
        plan.playbookHash,
        trigger,
        input.startedBy,
        input.alert ? JSON.stringify(timeline.redact(input.alert)) : null,
        JSON.stringify(timeline.redact(input.params ?? {})),
        dryRun,
        input.dedupKey ?? null,
        plan.concurrencyKey,
        plan.concurrencyLimit,
        plan.channel,
        dryRun ? null : (input.episodeId ?? null),
        dryRun && input.dryRunOptions ? JSON.stringify(timeline.redact(input.dryRunOptions)) : null,
      ]);
      if (inserted.rowCount === 0) {
        const existing = await runStatement<{ id: string }>(client, Q.RUN_BY_DEDUP_KEY, [input.dedupKey]);
        return { runId: existing.rows[0]!.id, created: false };
      }
      await timeline.appendToRun(client, plan.runId, ...plan.genesis, ...(input.events ?? []), ...held);
      await runStatement(client, Q.NOTIFY_RUNNABLE, ['manual']);
      return { runId: plan.runId, created: true };
    });
    if (result.created) this.emit(result.runId, [...plan.genesis, ...(input.events ?? []), ...held]);
    this.poke();
    return result;
  }

  /**
   * Ask a run to stop; its worker compensates completed steps. A queued run
   * nobody drives yet ends at once, and the runs queued behind it on its
   * concurrency key are woken.
   */
  async abortRun(runId: string, actor: string, reason?: string): Promise<{ status: AbortOutcome }> {
    if (!UUID.test(runId)) throw new NotFoundError(`run ${runId} not found`);
    const id = runId.toLowerCase();
    const why = checkStorableText(reason?.trim() || `aborted by ${actor}`, 'reason');
    const state = (await runStatement<{ status: string; concurrency_key: string | null }>(this.options.pool, Q.RUN_STATE, [id])).rows[0];
    if (!state) throw new NotFoundError(`run ${runId} not found`);
    const { result, events } = await withRunTx(this.options.pool, this.options.timeline, id, state.concurrency_key, (tx) =>
      requestAbort(tx, { actor, reason: why, key: state.concurrency_key, status: state.status }),
    );
    this.emit(id, events);
    this.poke();
    return { status: result };
  }

  /** Runs that stopped making progress (see stuck.ts), as GET /api/runs shows runs, each with why. */
  async listStuckRuns(filters: { playbook?: string; status?: string; limit?: number } = {}): Promise<Array<RunView & { stuck: StuckInfo }>> {
    const stuck = (await findStuckRuns(this.options.pool, this.leaseMs))
      .filter((r) => (filters.playbook === undefined || r.playbook === filters.playbook) && (filters.status === undefined || r.status === filters.status))
      .slice(0, filters.limit ?? 50);
    const views = new Map((await listRunsByIds(this.options.pool, stuck.map((r) => r.id))).map((v) => [v.id, v]));
    return stuck.flatMap((r) => {
      const view = views.get(r.id);
      return view ? [{ ...view, stuck: r.stuck }] : [];
    });
  }

  /** How many runs are stuck now (the firebreak_runs_stuck gauge). */
  async countStuckRuns(): Promise<number> {
    return (await findStuckRuns(this.options.pool, this.leaseMs)).length;
  }

  /**
   * A person has a finished (failed, aborted, cancelled) run continue from
   * `from` (default: the step that failed). See transitions.retry.
   */
  async retryRun(runId: string, actor: string, input: { from?: string; reason?: string } = {}): Promise<RetryResult> {
    const { id, key } = await this.runKey(runId);
    const reason = input.reason?.trim() || `retried by ${actor}`;
    const timeline = this.options.timeline;
    const { result, events } = await withRunTx(this.options.pool, timeline, id, key, (tx) =>
      retry(tx, (...e) => timeline.appendAutomation(tx.client, ...e), { actor, reason, ...(input.from !== undefined && { from: input.from }) }),
    );
    this.emit(id, events);
    this.poke();
    return result;
  }

  /** A person ends an active run now, without compensation. See transitions.cancel. */
  async cancelRun(runId: string, actor: string, reason?: string): Promise<{ previousStatus: string }> {
    const { id, key } = await this.runKey(runId);
    const why = checkStorableText(reason?.trim() || `cancelled by ${actor}`, 'reason');
    const timeline = this.options.timeline;
    const { result, events } = await withRunTx(this.options.pool, timeline, id, key, (tx) => cancel(tx, (...e) => timeline.appendAutomation(tx.client, ...e), { actor, reason: why }));
    this.emit(id, events);
    this.poke();
    return result;
  }

  private async runKey(runId: string): Promise<{ id: string; key: string | null }> {
    if (!UUID.test(runId)) throw new NotFoundError(`run ${runId} not found`);
    const id = runId.toLowerCase();
    const state = (await runStatement<{ concurrency_key: string | null }>(this.options.pool, Q.RUN_STATE, [id])).rows[0];
    if (!state) throw new NotFoundError(`run ${runId} not found`);
    return { id, key: state.concurrency_key };
  }

  async answerApproval(input: AnswerInput): Promise<AnswerResult> {
    if (input.decision !== 'approve' && input.decision !== 'reject') {
      throw new ValidationError('decision must be "approve" or "reject"', [{ path: 'decision', message: 'must be "approve" or "reject"' }]);
    }
    const { result, events } = await answerApproval({ pool: this.options.pool, timeline: this.options.timeline, policy: this.policyProxy }, input);
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
function dryRunPlan(plan: PlannedRun, input: StartRunInput, rails: RailsPreview | undefined): void {
  const wouldKey = plan.concurrencyKey;
  plan.concurrencyKey = null;
  plan.concurrencyLimit = null;
  const options = input.dryRunOptions;
  plan.genesis = plan.genesis.map((event) => {
    if (event.kind !== 'run.created') return event;
    const { concurrencyKey: _key, concurrencyLimit: _limit, ...data } = event.data;
    return {
      ...event,
      actor: input.startedBy ?? options?.requestedBy ?? event.actor,
      data: {
        ...data,
        ...(wouldKey && { concurrency: `not enforced in a dry run (a real run would hold ${wouldKey})` }),
        ...(options && { dryRunOptions: options as Record<string, unknown> }),
        ...(rails && { rails }),
      },
    };
  });
}
