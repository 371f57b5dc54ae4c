/**
 * Transactions on one run. Two shapes, one rule: every writer of a run takes
 * the run's timeline chain lock first (then, when it touches runs by
 * concurrency key, the key's lock), appends its events onto the head it read
 * under that lock, and changes the run's rows in the same transaction.
 *
 * - RunSession: the worker that leases the run. It keeps the run, its steps
 *   and its chain head between turns and sends each change as ONE round trip:
 *   RUN_GUARD (chain lock, key lock, leased row locked, head unchanged),
 *   the events hashed onto the known head, and the statements. When someone
 *   else wrote to the run meanwhile (an abort, an answer, a resolve) the guard
 *   fails, nothing is written, and the worker reloads and decides again.
 * - RunTx: everyone else (API, Slack, ingest, answers): an interactive
 *   transaction that locks, reads the head, then queries and appends.
 */
import { call, escapeLiteral, pgErrorCode, runStatement, sendBatch, withBatchClient, withTransaction, type Call, type DatabaseClock, type Pool, type PoolClient, type Statement } from '../store/index.js';
import { eventRecords, INSERT_EVENT_RECORDS, lockAndReadHeadSql, type ChainHead, type NewEvent, type Timeline } from '../timeline/index.js';
import type pg from 'pg';
import * as Q from './queries.js';
import type { ApprovalRow, RunDefinition, RunRow, StepRow } from './types.js';

/** This worker no longer holds the run's lease: it stops without writing anything more. */
export class LeaseLostError extends Error {
  readonly code = 'lease_lost';
  constructor(readonly runId: string) {
    super(`run ${runId}: lease lost; another worker continues it`);
  }
}

/** Someone else wrote to the run since it was loaded: reload and decide again. */
export class RunChangedError extends Error {
  readonly code = 'run_changed';
  constructor(readonly runId: string) {
    super(`run ${runId} changed while this worker held it`);
  }
}

export interface SessionDeps {
  pool: Pool;
  timeline: Timeline;
  clock: DatabaseClock;
  /** Told after every committed batch (Slack posts, console updates, metrics). */
  onEvent?: (runId: string, events: NewEvent[]) => void;
}

/** A run as CLAIM_RUNS / LOAD_RUN return it (dates inside the JSON columns come as text). */
export interface LoadedRow extends Omit<RunRow, 'definition'> {
  steps: Array<Omit<StepRow, 'started_at' | 'finished_at' | 'cleared_at'> & { started_at: string | null; finished_at: string | null; cleared_at: string | null }>;
  approval: (Omit<ApprovalRow, 'expires_at'> & { expires_at: string | null }) | null;
  head: ChainHead | null;
  now: Date;
}

const date = (v: string | null): Date | null => (v === null ? null : new Date(v));

/** Run definitions by revision: a revision never changes, so it is read once per process. */
export class DefinitionCache {
  private readonly byRevision = new Map<string, RunDefinition>();
  get(revision: string): RunDefinition | undefined {
    return this.byRevision.get(revision);
  }
  set(revision: string, definition: RunDefinition): void {
    if (this.byRevision.size >= 1_000) this.byRevision.delete(this.byRevision.keys().next().value!);
    this.byRevision.set(revision, definition);
  }
}

/** A run its worker holds: what the worker knows about it, and the one way it writes. */
export class RunSession {
  private constructor(
    private readonly deps: SessionDeps,
    readonly workerId: string,
    public run: RunRow,
    public steps: StepRow[],
    public approval: ApprovalRow | null,
    private head: ChainHead | null,
  ) {}

  /** Load a run this worker leases (one round trip); undefined when the lease is gone. */
  static async load(deps: SessionDeps, definitions: DefinitionCache, runId: string, workerId: string): Promise<RunSession | undefined> {
    const sent = Date.now();
    const { rows } = await runStatement<LoadedRow>(deps.pool, Q.LOAD_RUN, [runId, workerId]);
    deps.clock.observe(rows[0]?.now, sent, Date.now());
    return rows[0] ? RunSession.from(deps, definitions, rows[0], workerId) : undefined;
  }

  /** A session from a row the claim already loaded (its definition read once per revision). */
  static async from(deps: SessionDeps, definitions: DefinitionCache, row: LoadedRow, workerId: string): Promise<RunSession> {
    let definition = definitions.get(row.revision);
    if (!definition) {
      const found = (await runStatement<{ definition: RunDefinition }>(deps.pool, Q.REVISION_DEFINITION, [row.revision])).rows[0]?.definition;
      if (!found) throw new Error(`run ${row.id}: revision ${row.revision} has no definition`);
      definitions.set(row.revision, found);
      definition = found;
    }
    const { steps, approval, head, now: _now, ...run } = row as LoadedRow & { previous_owner?: unknown };
    delete (run as { previous_owner?: unknown }).previous_owner;
    return new RunSession(
      deps,
      workerId,
      { ...run, definition },
      steps.map((s) => ({ ...s, started_at: date(s.started_at), finished_at: date(s.finished_at), cleared_at: date(s.cleared_at) })),
      approval ? { ...approval, expires_at: date(approval.expires_at) } : null,
      head,
    );
  }

  /** Events and statements held for the next commit (an admission goes with the first step's start). */
  private deferred: { events: NewEvent[]; calls: Call[] } = { events: [], calls: [] };

  /** Commit `events` and `calls` with the next batch instead of on their own (they must not need a round trip now). */
  defer(events: readonly NewEvent[], calls: readonly Call[]): void {
    this.deferred.events.push(...events);
    this.deferred.calls.push(...calls);
  }

  /** The step row, to update the cached copy after a commit. */
  step(stepId: string): StepRow {
    const s = this.steps.find((x) => x.step_id === stepId);
    if (!s) throw new Error(`run ${this.run.id}: step ${stepId} is not in the run`);
    return s;
  }

  /**
   * Commit `events` and `calls` in one round trip behind the guard. `byKey`
   * takes the concurrency key's lock too (admission, finish). Returns the
   * calls' results. Throws LeaseLostError / RunChangedError when the guard
   * refuses; then nothing was written.
   */
  async commit(events: readonly NewEvent[], calls: readonly Call[], options: { byKey?: boolean } = {}): Promise<pg.QueryResult[]> {
    const deferred = this.deferred;
    if (deferred.calls.length > 0 || deferred.events.length > 0) {
      this.deferred = { events: [], calls: [] };
      try {
        const results = await this.commit([...deferred.events, ...events], [...deferred.calls, ...calls], options);
        return results.slice(deferred.calls.length);
      } catch (err) {
        if (!(err instanceof RunChangedError) && !(err instanceof LeaseLostError)) this.deferred = deferred;
        throw err;
      }
    }
    const key = options.byKey ? this.run.concurrency_key : null;
    const linked = this.deps.timeline.link(this.run.id, this.head, events);
    const batch: Call[] = [call(Q.RUN_GUARD, this.run.id, this.workerId, this.head?.seq ?? 0, key)];
    if (linked.length > 0) batch.push(call(INSERT_EVENT_RECORDS, eventRecords(linked)));
    batch.push(...calls);
    const sent = Date.now();
    let results: pg.QueryResult[];
    try {
      results = await withBatchClient(this.deps.pool, (client) => sendBatch(client, [], batch));
    } catch (err) {
      throw this.translate(err);
    }
    this.deps.clock.observe(results[0]?.rows[0]?.now as Date | undefined, sent, Date.now());
    const last = linked.at(-1);
    if (last) this.head = { seq: last.seq, hash: last.hash };
    if (linked.length > 0) this.emit(linked.map((e) => ({ kind: e.kind, actor: e.actor, data: e.data, time: new Date(e.time) }) as NewEvent));
    return results.slice(linked.length > 0 ? 2 : 1);
  }

  /**
   * An interactive transaction behind the same guard, for a decision that
   * needs to read under the locks first (admission counts the key's runs).
   * `read` runs in the first round trip; `decide` returns what to commit.
   */
  async decideUnderGuard<T>(read: Call, decide: (rows: pg.QueryResultRow[]) => { events: NewEvent[]; calls: Call[]; result: T }, options: { byKey?: boolean } = {}): Promise<T> {
    const key = options.byKey ? this.run.concurrency_key : null;
    const sent = Date.now();
    let emitted: NewEvent[] = [];
    let result: T;
    try {
      result = await withBatchClient(this.deps.pool, async (client) => {
        let open = false;
        try {
          open = true;
          const [, guard, rows] = await sendBatch(client, ['begin'], [call(Q.RUN_GUARD, this.run.id, this.workerId, this.head?.seq ?? 0, key), read]);
          this.deps.clock.observe(guard?.rows[0]?.now as Date | undefined, sent, Date.now());
          const decided = decide(rows?.rows ?? []);
          const linked = this.deps.timeline.link(this.run.id, this.head, decided.events);
          const calls = linked.length > 0 ? [call(INSERT_EVENT_RECORDS, eventRecords(linked)), ...decided.calls] : decided.calls;
          await sendBatch(client, [], calls, ['commit']);
          open = false;
          const last = linked.at(-1);
          if (last) this.head = { seq: last.seq, hash: last.hash };
          emitted = linked.map((e) => ({ kind: e.kind, actor: e.actor, data: e.data, time: new Date(e.time) }) as NewEvent);
          return decided.result;
        } finally {
          if (open) await client.query('rollback').catch(() => {});
        }
      });
    } catch (err) {
      throw this.translate(err);
    }
    if (emitted.length > 0) this.emit(emitted);
    return result;
  }

  private translate(err: unknown): unknown {
    const code = pgErrorCode(err);
    if (code === 'FBL01') return new LeaseLostError(this.run.id);
    if (code === 'FBH01') return new RunChangedError(this.run.id);
    return err;
  }

  private emit(events: NewEvent[]): void {
    try {
      this.deps.onEvent?.(this.run.id, events);
    } catch {
      // A listener's failure is its own (it logs); the run goes on.
    }
  }

  /** The database clock as this process last read it. */
  now(): number {
    return this.deps.clock.now();
  }
}

/** An interactive transaction on one run (API, Slack, ingest, answers): locks taken, head known. */
export class RunTx {
  readonly events: NewEvent[] = [];

  private constructor(
    readonly client: PoolClient,
    readonly runId: string,
    private readonly timeline: Timeline,
    private head: ChainHead | null,
  ) {}

  /**
   * Lock the run's chain (and its concurrency key, when given) and read its
   * head, in one round trip, inside the caller's transaction.
   */
  static async open(client: PoolClient, timeline: Timeline, runId: string, key: string | null): Promise<RunTx> {
    const [lock, head] = lockAndReadHeadSql(escapeLiteral(runId));
    const keyLock = key === null ? [] : [`select pg_advisory_xact_lock(7271, hashtext(${escapeLiteral(key)}))`];
    const results = (await client.query([lock, ...keyLock, head].join(';\n'))) as unknown as pg.QueryResult[];
    const row = results.at(-1)?.rows[0] as ChainHead | undefined;
    return new RunTx(client, runId, timeline, row ?? null);
  }

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(s: Statement, ...params: unknown[]): Promise<pg.QueryResult<R>> {
    return runStatement<R>(this.client, s, params);
  }

  async append(...events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    const appended = await this.timeline.appendToLockedRun(this.client, this.runId, this.head, events);
    const last = appended.at(-1);
    if (last) this.head = { seq: last.seq, hash: last.hash };
    this.events.push(...appended.map((e) => ({ kind: e.kind, actor: e.actor, data: e.data, time: new Date(e.time) }) as NewEvent));
  }
}

/** withTransaction + RunTx.open: the usual way to change a run from outside its worker. */
export async function withRunTx<T>(pool: Pool, timeline: Timeline, runId: string, key: string | null, fn: (tx: RunTx) => Promise<T>): Promise<{ result: T; events: NewEvent[] }> {
  let events: NewEvent[] = [];
  const result = await withTransaction(pool, async (client) => {
    const tx = await RunTx.open(client, timeline, runId, key);
    const r = await fn(tx);
    events = tx.events;
    return r;
  });
  return { result, events };
}

