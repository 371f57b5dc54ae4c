/**
 * Live updates for the console: server-sent events saying "run X changed".
 *
 * The source of truth is the timeline table, read by id: this process's
 * engine pokes the reader at once after each commit (Engine.onEvent), and a
 * periodic read catches what other replicas wrote. Identity ids can commit
 * out of order (a transaction that took id 10 may commit after one that took
 * 11), so each read looks a little behind the newest id it has seen and skips
 * ids it already announced: every event is announced once, none is missed.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Pool } from '../store/index.js';

export interface RunChange {
  runId: string;
  kinds: string[];
  lastEventId: number;
}

type Listener = (change: RunChange) => void;

const NEWEST_ID = `select coalesce(max(id), 0)::bigint as id from timeline_events`;
const EVENTS_SINCE = `
  select id, run_id, kind from timeline_events
  where id > $1::bigint and run_id is not null
  order by id
  limit $2::int`;

/** How far behind the newest seen id each read looks, for late commits. */
const LOOKBACK_IDS = 64;
const BATCH = 1_000;

export class LiveFeed {
  private readonly listeners = new Set<Listener>();
  private high = -1;
  private readonly announced = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private again = false;
  private closed = false;

  constructor(
    private readonly pool: Pool,
    private readonly logger: Logger,
    private readonly pollMs = 1_000,
  ) {}

  /** Start listening; the returned function stops. Reads the database only while someone listens. */
  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    if (this.listeners.size === 1) this.schedule(0);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) {
        clearTimeout(this.timer);
        this.timer = undefined;
        this.high = -1; // next subscriber starts from "now"
        this.announced.clear();
      }
    };
  }

  get size(): number {
    return this.listeners.size;
  }

  /** Something was committed here: read now instead of at the next tick. */
  poke(): void {
    if (this.listeners.size > 0) this.schedule(0);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.listeners.clear();
  }

  private schedule(delay: number): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.read(), delay);
  }

  private async read(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = this.readOnce()
      .catch((err: Error) => this.logger.warn({ err: err.message }, 'console live feed: cannot read the timeline'))
      .finally(() => {
        this.reading = undefined;
        if (this.listeners.size === 0) return;
        if (this.again) {
          this.again = false;
          this.schedule(0);
        } else this.schedule(this.pollMs);
      });
    return this.reading;
  }

  private async readOnce(): Promise<void> {
    if (this.high < 0) {
      this.high = Number((await this.pool.query<{ id: string }>(NEWEST_ID)).rows[0]?.id ?? 0);
      return;
    }
    const from = Math.max(0, this.high - LOOKBACK_IDS);
    const { rows } = await this.pool.query<{ id: string; run_id: string; kind: string }>(EVENTS_SINCE, [from, BATCH]);
    const byRun = new Map<string, RunChange>();
    for (const row of rows) {
      const id = Number(row.id);
      if (this.announced.has(id) || id <= from) continue;
      this.announced.add(id);
      if (id > this.high) this.high = id;
      const change = byRun.get(row.run_id) ?? byRun.set(row.run_id, { runId: row.run_id, kinds: [], lastEventId: id }).get(row.run_id)!;
      change.kinds.push(row.kind);
      change.lastEventId = id;
    }
    for (const id of this.announced) if (id <= this.high - LOOKBACK_IDS) this.announced.delete(id);
    for (const change of byRun.values()) {
      for (const l of this.listeners) {
        try {
          l(change);
        } catch (err) {
          this.logger.warn({ err: (err as Error).message }, 'console live listener failed');
        }
      }
    }
    if (rows.length === BATCH) this.again = true;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** How long a stream trusts its last credential check before checking again (at the next change or heartbeat). */
const RECHECK_MS = 1_000;

export interface EventStreamOptions {
  heartbeatMs?: number;
  /**
   * Whether the credential that opened a stream still holds (a session not
   * logged out, a token not revoked). A stream lives for hours; without this,
   * a logout or a revocation would not end what it already receives.
   */
  stillAuthorized?: (request: FastifyRequest) => Promise<boolean>;
}

/** GET /api/events[?run=<id>]: a text/event-stream of `run` events ({ runId, kinds, lastEventId }). */
export function registerEventStream(app: FastifyInstance, feed: LiveFeed, options: EventStreamOptions = {}): void {
  const open = new Set<FastifyReply>();
  app.addHook('preClose', async () => {
    for (const reply of open) reply.raw.end();
    open.clear();
  });

  app.get('/api/events', { config: { access: 'read' } }, (request: FastifyRequest, reply: FastifyReply) => {
    const run = (request.query as { run?: unknown }).run;
    if (run !== undefined && (typeof run !== 'string' || !UUID.test(run))) {
      return reply.code(400).send({ error: 'invalid query', details: [{ path: 'run', message: 'must be a run id (uuid)' }] });
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 3000\n: firebreak live updates${run ? ` for run ${run}` : ''}\n\n`);
    open.add(reply);
    // Writes go out in order, each after the credential was (re)checked; a credential that no longer holds ends the stream.
    let checkedAt = Date.now();
    let queue: Promise<void> = Promise.resolve();
    let ended = false;
    const send = (text: string) => {
      queue = queue.then(async () => {
        if (ended) return;
        if (options.stillAuthorized && Date.now() - checkedAt >= RECHECK_MS) {
          const ok = await options.stillAuthorized(request).catch((err: Error) => {
            request.log.warn({ err: err.message }, 'live updates: credential check failed; ending the stream');
            return false;
          });
          checkedAt = Date.now();
          if (!ok) {
            ended = true;
            res.end('event: end\ndata: {"reason":"the session or token that opened this stream is no longer valid"}\n\n');
            return;
          }
        }
        if (!ended) res.write(text);
      });
    };
    const unsubscribe = feed.subscribe((change) => {
      if (run && change.runId !== run) return;
      send(`event: run\nid: ${change.lastEventId}\ndata: ${JSON.stringify(change)}\n\n`);
    });
    const heartbeat = setInterval(() => send(': keep-alive\n\n'), options.heartbeatMs ?? 15_000);
    const stop = () => {
      ended = true;
      clearInterval(heartbeat);
      unsubscribe();
      open.delete(reply);
    };
    request.raw.on('close', stop);
    res.on('close', stop);
    return reply;
  });
}
