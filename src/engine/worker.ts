/**
 * A worker process's loop: claim due runs with a lease, drive each with the
 * executor, renew the leases by heartbeat. Woken by LISTEN/NOTIFY; polling is
 * the fallback when a notification is missed or the connection is down.
 *
 * Each run it drives gets two signals. `lease` fires when the lease is lost
 * (the heartbeat finds another owner) or may be lost (no renewal succeeded for
 * a whole lease period, e.g. the database is unreachable or the process was
 * stalled): everything for that run stops and nothing more is written, because
 * another worker may hold it now. `abort` fires when someone asks the run to
 * abort: the step in flight is cut short and the run compensates.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { coerceError } from '../errors.js';
import { call, isDatabaseUnavailable, runStatement, sendBatch, withBatchClient, type Call, type DatabaseClock, type Pool } from '../store/index.js';
import type { RunExecutor } from './executor.js';
import type { LoadedRow } from './run-tx.js';
import * as Q from './queries.js';

export interface WorkerOptions {
  pool: Pool;
  databaseUrl: string;
  clock: DatabaseClock;
  logger: Logger;
  /** How many runs this process drives at once. */
  concurrency: number;
  leaseMs: number;
  pollMs: number;
  makeExecutor: (workerId: string) => RunExecutor;
  onTakeover?: () => void;
  /** A pause or resume was announced (NOTIFY firebreak_automation), here or on another replica. */
  onAutomationChange?: () => void;
}

interface Active {
  lease: AbortController;
  abort: AbortController;
  /** Local time by which the lease must have been renewed, or it may be someone else's. */
  leaseDeadline: number;
  done: Promise<void>;
}

export class Worker {
  readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly active = new Map<string, Active>();
  private readonly executor: RunExecutor;
  private stopping = false;
  private wake: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private listener: pg.Client | undefined;
  private listenDone: Promise<void> | undefined;
  private readonly log: Logger;

  constructor(private readonly options: WorkerOptions) {
    this.executor = options.makeExecutor(this.id);
    this.log = options.logger.child({ worker: this.id });
  }

  start(): void {
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), Math.max(100, Math.floor(this.options.leaseMs / 3)));
    this.heartbeatTimer.unref();
    this.listenDone = this.listen();
    this.loopDone = this.loop();
  }

  /** Nudge the loop (a run was created or answered in this process). */
  poke(): void {
    this.wake?.();
  }

  get activeRuns(): number {
    return this.active.size;
  }

  /**
   * Stop claiming; let the runs in flight finish their turn (up to `graceMs`);
   * past that, cut them short and WAIT until each has stopped; only then give
   * the leases back, so no other worker resumes a run this one still touches.
   * Heartbeats go on until then.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loopDone;
    const all = () => Promise.allSettled([...this.active.values()].map((a) => a.done));
    const timedOut = await Promise.race([all().then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), graceMs).unref())]);
    if (timedOut) {
      for (const a of this.active.values()) a.lease.abort(new Error('worker stopping'));
      await all();
    }
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await runStatement(this.options.pool, Q.RELEASE_ALL, [this.id]).catch((err) => this.log.warn({ err: coerceError(err).message }, 'could not give leases back; they expire on their own'));
    await this.listener?.end().catch(() => {});
    await this.listenDone;
  }

  private async listen(): Promise<void> {
    while (!this.stopping) {
      const client = new pg.Client({ connectionString: this.options.databaseUrl, connectionTimeoutMillis: 3_000, application_name: 'firebreak-listen' });
      try {
        const closed = new Promise<void>((resolve) => {
          client.on('error', () => resolve());
          client.on('end', () => resolve());
        });
        await client.connect();
        this.listener = client;
        client.on('notification', (n) => {
          if (n.channel === 'firebreak_automation') this.options.onAutomationChange?.();
          else this.wake?.();
        });
        await client.query('listen firebreak_runnable');
        await client.query('listen firebreak_automation');
        this.wake?.();
        await closed;
      } catch (err) {
        this.log.debug({ err: coerceError(err).message }, 'listen connection failed; polling meanwhile');
      }
      await client.end().catch(() => {});
      if (!this.stopping) await new Promise((r) => setTimeout(r, 1_000));
    }
  }

  private async loop(): Promise<void> {
    let backoff = 0;
    while (!this.stopping) {
      try {
        const free = this.options.concurrency - this.active.size;
        if (free > 0) {
          const claimed = await this.claim(free);
          backoff = 0;
          if (claimed > 0) continue; // there may be more
        }
      } catch (err) {
        backoff = Math.min(5_000, backoff === 0 ? 250 : backoff * 2);
        if (isDatabaseUnavailable(err)) this.log.warn({ err: coerceError(err).message }, 'database unavailable; worker retrying');
        else this.log.error({ err }, 'worker loop error');
      }
      if (this.stopping) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoff || this.options.pollMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  private async claim(limit: number): Promise<number> {
    const sent = Date.now();
    const rows = await this.withoutFlush<LoadedRow & { previous_owner: string | null }>(call(Q.CLAIM_RUNS, this.id, limit, this.options.leaseMs));
    const claimedAt = Date.now();
    this.options.clock.observe(rows[0]?.now, sent, claimedAt);
    for (const row of rows) {
      // Our own lease lapsed (heartbeats failed: a Postgres outage, a stalled event loop) while this
      // process is still driving the run: the claim just renewed it. Driving it a second time would
      // run two turns of one run at once under one worker id, which fencing cannot tell apart.
      const current = this.active.get(row.id);
      if (current) {
        current.leaseDeadline = sent + this.options.leaseMs;
        continue;
      }
      if (row.previous_owner && row.previous_owner !== this.id) {
        this.log.info({ runId: row.id, previousOwner: row.previous_owner }, 'took over a run whose lease expired');
        this.options.onTakeover?.();
      }
      this.drive(row, sent);
    }
    return rows.length;
  }

  private drive(claimed: LoadedRow, claimSentAt: number): void {
    const runId = claimed.id;
    const lease = new AbortController();
    const abort = new AbortController();
    const entry: Active = { lease, abort, leaseDeadline: claimSentAt + this.options.leaseMs, done: Promise.resolve() };
    this.active.set(runId, entry);
    entry.done = this.executor
      .advance(runId, { lease: lease.signal, abort: abort.signal, leaseHeld: () => !lease.signal.aborted && Date.now() < entry.leaseDeadline }, claimed)
      .catch((err) => {
        // The lease stays until it expires, so another worker (or this one) retries the run.
        this.log.error({ runId, err: coerceError(err).message, stack: coerceError(err).stack }, 'run turn failed; it will be retried after its lease expires');
      })
      .finally(() => {
        this.active.delete(runId);
        this.wake?.();
      });
  }

  private async heartbeat(): Promise<void> {
    if (this.active.size === 0) return;
    // Before the query too: a heartbeat that hangs must not keep an overdue run going.
    this.expireOverdue();
    const ids = [...this.active.keys()];
    const sent = Date.now();
    try {
      const rows = await this.withoutFlush<{ id: string; abort_requested: boolean }>(call(Q.HEARTBEAT, this.id, this.options.leaseMs, ids));
      const held = new Map(rows.map((r) => [r.id, r.abort_requested]));
      for (const id of ids) {
        const active = this.active.get(id);
        if (!active) continue;
        if (!held.has(id)) active.lease.abort(new Error('lease lost'));
        else {
          // Renewed as of when the heartbeat was sent (the database may have applied it later, never earlier).
          active.leaseDeadline = sent + this.options.leaseMs;
          if (held.get(id)) active.abort.abort(new Error('run abort requested'));
        }
      }
    } catch (err) {
      this.log.warn({ err: coerceError(err).message }, 'heartbeat failed');
    } finally {
      this.expireOverdue();
    }
  }

  /**
   * Claims and renewals commit without waiting for the WAL flush: a lease lost
   * in a database crash only makes its run claimable again, and the worker's
   * next batch (whose commit is flushed, and with it every earlier record)
   * checks the lease anyway. It saves a flush on the path from alert to first step.
   */
  private async withoutFlush<R>(c: Call): Promise<R[]> {
    const results = await withBatchClient(this.options.pool, (client) => sendBatch(client, ['set local synchronous_commit to off'], [c]));
    return (results[1]?.rows ?? []) as R[];
  }

  /** A lease not renewed for a whole lease period may be another worker's by now: stop touching the run. */
  private expireOverdue(): void {
    const now = Date.now();
    for (const active of this.active.values()) {
      if (now >= active.leaseDeadline && !active.lease.signal.aborted) active.lease.abort(new Error('lease not renewed in time'));
    }
  }
}
