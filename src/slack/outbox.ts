/**
 * The outbox: every Web API call Firebreak makes is a row first, then a
 * sender loop (on any replica) makes the call. Rows of one thread go out one
 * at a time in order; 429 (Retry-After) and 5xx are retried with backoff,
 * forever if need be, so a Slack outage delays messages but never drops an
 * approval, and the engine never waits on Slack. The WebClient's own retries
 * are off: this loop owns them, with the schedule in the database.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { webApi } from '@slack/bolt';
import type { Logger } from 'pino';
import { coerceError, RetryAfterError } from '../errors.js';
import { isDatabaseUnavailable, withTransaction, type Pool, type Queryable } from '../store/index.js';
import type { Block } from './render.js';
import * as Q from './queries.js';

export type OutboxMethod = 'chat.postMessage' | 'chat.update' | 'chat.postEphemeral';

/** A message to post. `threadRef` replies in the thread of that message; `ref` names the new message. */
export interface PostPayload {
  channel: string;
  text: string;
  blocks?: Block[];
  threadRef?: string;
  broadcast?: boolean;
}
export interface UpdatePayload {
  targetRef: string;
  text: string;
  blocks?: Block[];
}
export interface EphemeralPayload {
  channel: string;
  user: string;
  text: string;
  blocks?: Block[];
  threadTs?: string;
}

export type OutboxItem =
  | { method: 'chat.postMessage'; kind: string; threadKey: string; runId?: string | null; ref?: string; payload: PostPayload }
  | { method: 'chat.update'; kind: string; threadKey: string; runId?: string | null; payload: UpdatePayload }
  | { method: 'chat.postEphemeral'; kind: string; threadKey: string; runId?: string | null; payload: EphemeralPayload };

/** Write rows, in order, inside the caller's transaction (or on a pool). */
export async function enqueue(db: Queryable, ...items: OutboxItem[]): Promise<void> {
  for (const item of items) {
    const ref = item.method === 'chat.postMessage' ? (item.ref ?? null) : null;
    await db.query(Q.INSERT_OUTBOX, [item.threadKey, item.runId ?? null, item.kind, item.method, ref, JSON.stringify(item.payload)]);
  }
}

interface OutboxRow {
  id: number;
  thread_key: string;
  run_id: string | null;
  kind: string;
  method: OutboxMethod;
  ref: string | null;
  payload: Record<string, unknown>;
  attempts: number;
}

/** What to do after a failed call. */
export type Verdict = { retry: true; delayMs: number; rateLimited?: boolean } | { retry: false; status: 'failed' | 'skipped' };

/** Platform errors that mean "try again later" rather than "this message can never be sent". */
const TRANSIENT_PLATFORM_ERRORS = new Set(['ratelimited', 'rate_limited', 'internal_error', 'fatal_error', 'service_unavailable', 'request_timeout', 'timeout']);
/** Fixable by the operator (token, scopes, membership): keep retrying, slowly, rather than drop an approval. */
const CONFIG_PLATFORM_ERRORS = new Set(['invalid_auth', 'not_authed', 'token_revoked', 'token_expired', 'account_inactive', 'missing_scope', 'not_in_channel', 'team_access_not_granted']);

export const MAX_BACKOFF_MS = 60_000;
const CONFIG_BACKOFF_MS = 5 * 60_000;

/** Exponential backoff with ±20% jitter: 500 ms, 1 s, 2 s, ... capped at 60 s. */
export function outboxBackoff(attempts: number, baseMs = 500): number {
  const raw = Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(raw * (0.8 + Math.random() * 0.4));
}

/** Classify a WebClient error: retry (when, and whether Slack asked us to slow down) or give up. */
export function classifySlackError(err: unknown, attempts: number): Verdict {
  const e = err as { code?: string; retryAfter?: number; statusCode?: number; data?: { error?: string } };
  if (err instanceof RetryAfterError) return { retry: true, delayMs: err.retryAfterMs, rateLimited: true };
  switch (e?.code) {
    case webApi.ErrorCode.RateLimitedError:
      return { retry: true, delayMs: Math.max(1, e.retryAfter ?? 1) * 1_000 + Math.floor(Math.random() * 200), rateLimited: true };
    case webApi.ErrorCode.HTTPError:
      // Slack answers 200 for nearly everything; 5xx and 408 are outages, other 4xx are our fault.
      if ((e.statusCode ?? 500) >= 500 || e.statusCode === 408) return { retry: true, delayMs: outboxBackoff(attempts) };
      return { retry: false, status: 'failed' };
    case webApi.ErrorCode.RequestError:
      return { retry: true, delayMs: outboxBackoff(attempts) };
    case webApi.ErrorCode.PlatformError: {
      const code = e.data?.error ?? '';
      if (TRANSIENT_PLATFORM_ERRORS.has(code)) return { retry: true, delayMs: outboxBackoff(attempts) };
      if (CONFIG_PLATFORM_ERRORS.has(code)) return { retry: true, delayMs: Math.min(CONFIG_BACKOFF_MS, outboxBackoff(attempts, 5_000)) };
      if (code === 'message_not_found' || code === 'cant_update_message' || code === 'edit_window_closed') return { retry: false, status: 'skipped' };
      return { retry: false, status: 'failed' };
    }
    default:
      // Unknown failures (a bug, a DNS hiccup wrapped oddly): retry rather than lose the message.
      return { retry: true, delayMs: outboxBackoff(attempts) };
  }
}

export interface SenderOptions {
  pool: Pool;
  client: InstanceType<typeof webApi.WebClient>;
  logger: Logger;
  /** How often to look for due rows when nothing pokes the loop (other replicas' rows, retries). */
  pollMs?: number;
  /** Rows sent at once (distinct threads). */
  concurrency?: number;
  /** Lease on a claimed row; longer than the WebClient timeout. */
  leaseMs?: number;
}

/** The sender loop. Start one per process; replicas share the work through the table. */
export class OutboxSender {
  readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private stopping = false;
  private wake: (() => void) | undefined;
  private done: Promise<void> | undefined;
  /** Per-method pause after a 429: Slack's limits are per method, and other rows would only hit it too. */
  private readonly pausedUntil = new Map<string, number>();
  private readonly log: Logger;

  constructor(private readonly options: SenderOptions) {
    this.log = options.logger.child({ component: 'slack-outbox' });
  }

  start(): void {
    if (!this.done) this.done = this.loop();
  }

  poke(): void {
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.done;
  }

  private async loop(): Promise<void> {
    let backoff = 0;
    while (!this.stopping) {
      let claimed = 0;
      try {
        const { rows } = await this.options.pool.query<OutboxRow>(Q.CLAIM_OUTBOX, [this.id, this.options.concurrency ?? 8, this.options.leaseMs ?? 60_000]);
        claimed = rows.length;
        await Promise.all(rows.map((row) => this.deliver(row)));
        backoff = 0;
      } catch (err) {
        backoff = Math.min(5_000, backoff === 0 ? 250 : backoff * 2);
        if (isDatabaseUnavailable(err)) this.log.warn({ err: coerceError(err).message }, 'database unavailable; Slack outbox retrying');
        else this.log.error({ err: coerceError(err).message }, 'Slack outbox loop error');
      }
      if (claimed > 0 && backoff === 0) continue; // the next row of those threads may be due now
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoff || (this.options.pollMs ?? 500));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  private async deliver(row: OutboxRow): Promise<void> {
    const log = this.log.child({ outboxId: row.id, method: row.method, kind: row.kind, ...(row.run_id && { runId: row.run_id }) });
    const paused = (this.pausedUntil.get(row.method) ?? 0) - Date.now();
    if (paused > 0) {
      await this.options.pool.query(Q.MARK_RETRY, [row.id, this.id, paused, 'waiting out a rate limit', 0]);
      return;
    }
    let result: { channel?: string; ts?: string } | 'skip';
    try {
      result = await this.call(row);
    } catch (err) {
      const verdict = classifySlackError(err, row.attempts + 1);
      const message = describeSlackError(err);
      if (verdict.retry) {
        if (verdict.rateLimited) this.pausedUntil.set(row.method, Date.now() + verdict.delayMs);
        log.warn({ err: message, attempt: row.attempts + 1, retryInMs: verdict.delayMs }, 'Slack call failed; will retry');
        await this.options.pool.query(Q.MARK_RETRY, [row.id, this.id, verdict.delayMs, message, 1]);
      } else {
        log.error({ err: message, attempt: row.attempts + 1 }, 'Slack call failed for good; the run goes on without this message (see the console)');
        await this.options.pool.query(Q.MARK_GIVEN_UP, [row.id, this.id, verdict.status, message]);
      }
      return;
    }
    if (result === 'skip') {
      await this.options.pool.query(Q.MARK_GIVEN_UP, [row.id, this.id, 'skipped', 'the message to update was never posted']);
      return;
    }
    await withTransaction(this.options.pool, async (client) => {
      if (row.ref && result.ts && result.channel) await client.query(Q.SAVE_MESSAGE, [row.ref, result.channel, result.ts]);
      await client.query(Q.MARK_SENT, [row.id, this.id]);
    });
  }

  private async findMessage(ref: string | undefined): Promise<{ channel: string; ts: string } | undefined> {
    if (!ref) return undefined;
    const { rows } = await this.options.pool.query<{ channel: string; ts: string }>(Q.FIND_MESSAGE, [ref]);
    return rows[0];
  }

  /** One Web API call. References to earlier messages are resolved now, after those were sent. */
  private async call(row: OutboxRow): Promise<{ channel?: string; ts?: string } | 'skip'> {
    const client = this.options.client;
    switch (row.method) {
      case 'chat.postMessage': {
        const p = row.payload as unknown as PostPayload;
        const thread = await this.findMessage(p.threadRef);
        // Without its parent (which could not be posted at all), a reply still goes to the channel.
        const args: Record<string, unknown> = { channel: thread?.channel ?? p.channel, text: p.text, unfurl_links: false, unfurl_media: false };
        if (p.blocks) args.blocks = p.blocks;
        if (thread) {
          args.thread_ts = thread.ts;
          if (p.broadcast) args.reply_broadcast = true;
        }
        const res = await client.chat.postMessage(args as never);
        return { channel: res.channel, ts: res.ts };
      }
      case 'chat.update': {
        const p = row.payload as unknown as UpdatePayload;
        const target = await this.findMessage(p.targetRef);
        if (!target) return 'skip';
        const res = await client.chat.update({ channel: target.channel, ts: target.ts, text: p.text, ...(p.blocks && { blocks: p.blocks }) } as never);
        return { channel: res.channel, ts: res.ts };
      }
      case 'chat.postEphemeral': {
        const p = row.payload as unknown as EphemeralPayload;
        await client.chat.postEphemeral({ channel: p.channel, user: p.user, text: p.text, ...(p.blocks && { blocks: p.blocks }), ...(p.threadTs && { thread_ts: p.threadTs }) } as never);
        return {};
      }
    }
  }
}

export function describeSlackError(err: unknown): string {
  const e = err as { code?: string; data?: { error?: string }; statusCode?: number; retryAfter?: number; message?: string };
  if (e?.code === webApi.ErrorCode.PlatformError) return `Slack error: ${e.data?.error ?? 'unknown'}`;
  if (e?.code === webApi.ErrorCode.HTTPError) return `HTTP ${e.statusCode ?? '?'} from Slack`;
  if (e?.code === webApi.ErrorCode.RateLimitedError) return `rate limited (Retry-After: ${e.retryAfter ?? '?'}s)`;
  return coerceError(err).message;
}
