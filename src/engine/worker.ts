/**
 * A worker process's loop: claim runnable runs with a lease, drive each with
 * the executor, renew leases by heartbeat, expire overdue approvals. Woken by
 * LISTEN/NOTIFY; polling is the fallback when a notification is missed or the
 * database connection is down.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { coerceError } from '../errors.js';
import { isDatabaseUnavailable, type Pool } from '../store/index.js';
import type { NewEvent, Timeline } from '../timeline/index.js';
import type { RunExecutor } from './executor.js';
import * as Q from './queries.js';

export interface WorkerOptions {
  pool: Pool;
  databaseUrl: string;
  timeline: Timeline;
  logger: Logger;
  /** How many runs this process drives at once. */
  concurrency: number;
  leaseMs: number;
  pollMs: number;
  makeExecutor: (workerId: string) => RunExecutor;
  onEvent?: (runId: string, events: NewEvent[]) => void;
  onTakeover?: () => void;
}

interface Active {
  controller: AbortController;
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
  private readonly log: Logger;

  constructor(private readonly options: WorkerOptions) {
    this.executor = options.makeExecutor(this.id);
    this.log = options.logger.child({ worker: this.id });
  }

  start(): void {
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), Math.max(200, Math.floor(this.options.leaseMs / 3)));
    this.heartbeatTimer.unref();
    void this.listen();
    this.loopDone = this.loop();
  }

  /** Nudge the loop (a run was created or answered in this process). */
  poke(): void {
    this.wake?.();
  }

  get activeRuns(): number {
    return this.active.size;
  }

  /** Stop claiming, let in-flight steps finish (up to `graceMs`), then give leases back. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loopDone;
    const all = Promise.allSettled([...this.active.values()].map((a) => a.done));
    const timedOut = await Promise.race([all.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), graceMs).unref())]);
    if (timedOut) for (const a of this.active.values()) a.controller.abort(new Error('worker stopping'));
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await this.options.pool.query(Q.RELEASE_ALL, [this.id]).catch(() => {});
    await this.listener?.end().catch(() => {});
  }

  private async listen(): Promise<void> {
    while (!this.stopping) {
      const client = new pg.Client({ connectionString: this.options.databaseUrl, connectionTimeoutMillis: 3_000 });
      try {
        const closed = new Promise<void>((resolve) => {
          client.on('error', () => resolve());
          client.on('end', () => resolve());
        });
        await client.connect();
        this.listener = client;
        client.on('notification', () => this.wake?.());
        await client.query('listen firebreak_runnable');
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
    const { rows } = await this.options.pool.query<{ id: string; previous_owner: string | null }>(Q.CLAIM_RUNS, [this.id, limit, this.options.leaseMs]);
    for (const row of rows) {
      // Our own lease lapsed (heartbeats failed: a Postgres outage, a stalled event loop) while this
      // process is still driving the run: the claim just renewed it. Driving it a second time would
      // run two turns of one run at once under one worker id, which fencing cannot tell apart.
      if (this.active.has(row.id)) continue;
      if (row.previous_owner && row.previous_owner !== this.id) {
        this.log.info({ runId: row.id, previousOwner: row.previous_owner }, 'took over a run whose lease expired');
        this.options.onTakeover?.();
      }
      this.drive(row.id);
    }
    return rows.length;
  }

  private drive(runId: string): void {
    const controller = new AbortController();
    const done = this.executor
      .advance(runId, controller.signal)
      .catch(async (err) => {
        // The lease stays until it expires, so another worker (or this one) retries the run.
        this.log.error({ runId, err: coerceError(err).message, stack: coerceError(err).stack }, 'run turn failed; it will be retried after its lease expires');
      })
      .finally(() => {
        this.active.delete(runId);
        this.wake?.();
      });
    this.active.set(runId, { controller, done });
  }

  private async heartbeat(): Promise<void> {
    if (this.active.size === 0) return;
    const ids = [...this.active.keys()];
    try {
      const { rows } = await this.options.pool.query<{ id: string; abort_requested: boolean }>(Q.HEARTBEAT, [ids, this.id, this.options.leaseMs]);
      const held = new Map(rows.map((r) => [r.id, r.abort_requested]));
      for (const id of ids) {
        const active = this.active.get(id);
        if (!active) continue;
        if (!held.has(id)) active.controller.abort(new Error('lease lost'));
        else if (held.get(id)) active.controller.abort(new Error('run abort requested'));
      }
    } catch (err) {
      this.log.warn({ err: coerceError(err).message }, 'heartbeat failed');
    }
  }
}
