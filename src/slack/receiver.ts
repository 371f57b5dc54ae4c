/**
 * A Bolt Receiver served by Firebreak's own fastify server at POST
 * /slack/events (events, interactivity and slash commands). The signature is
 * checked by Bolt's verifySlackRequest over the exact raw bytes, with the
 * 5-minute window; accepted signatures are remembered in Postgres, so a
 * replayed request is refused by every replica. The HTTP answer goes out as
 * soon as the listener acks (Slack wants it within 3 s); work after the ack
 * continues in the background.
 */
import { verifySlackRequest, type App, type Receiver, type ReceiverEvent } from '@slack/bolt';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { coerceError, ValidationError } from '../errors.js';
import { parseJson } from '../json/index.js';
import { isDatabaseUnavailable, type Pool } from '../store/index.js';
import * as Q from './queries.js';

export { SLACK_EVENTS_PATH } from './paths.js';
import { SLACK_EVENTS_PATH } from './paths.js';

/** Slack's window for request timestamps, both ways. */
const WINDOW_SECONDS = 5 * 60;
/** Answer before Slack's 3 s deadline even when no listener acked. */
const ACK_DEADLINE_MS = 2_500;
/**
 * The only signature shape Slack sends. Bolt's own check compares what it can parse
 * and ignores anything after a second `=`, so `v0=<hmac>=x` would pass it as a new
 * string: only this exact shape reaches Bolt, and the replay guard keys on the HMAC.
 */
const SIGNATURE = /^v0=([0-9a-f]{64})$/;

/** The HMAC (lower-case hex) a well-formed signature carries: what the replay guard remembers. */
export function signatureDigest(signature: string): string | undefined {
  return SIGNATURE.exec(signature)?.[1];
}

export class SlackRequestError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
    this.name = 'SlackRequestError';
  }
}

export interface VerifyInput {
  signingSecret: string;
  rawBody: string;
  signature: string | undefined;
  timestamp: string | undefined;
  nowMs: number;
}

/** Throws SlackRequestError(401) unless the request is signed with our secret within the window. */
export function verifySlackSignature(input: VerifyInput): void {
  if (!input.signature || !input.timestamp) throw new SlackRequestError('missing X-Slack-Signature or X-Slack-Request-Timestamp', 401);
  if (!signatureDigest(input.signature)) throw new SlackRequestError('X-Slack-Signature must be version v0 with a 64-digit lower-case hex HMAC (v0=<64 lower-case hex digits>)', 401);
  const ts = Number(input.timestamp);
  if (!Number.isInteger(ts)) throw new SlackRequestError('X-Slack-Request-Timestamp is not a number', 401);
  // Bolt rejects stale timestamps; one from the future is as suspect.
  if (ts > Math.floor(input.nowMs / 1000) + WINDOW_SECONDS) throw new SlackRequestError('X-Slack-Request-Timestamp is more than 5 minutes in the future', 401);
  try {
    verifySlackRequest({
      signingSecret: input.signingSecret,
      body: input.rawBody,
      headers: { 'x-slack-signature': input.signature, 'x-slack-request-timestamp': ts },
      nowMilliseconds: input.nowMs,
    });
  } catch (err) {
    throw new SlackRequestError(coerceError(err).message, 401);
  }
}

/** The body as Bolt expects it: interactivity's `payload` JSON, slash command fields, or the Events API JSON. */
export function parseSlackBody(raw: string, contentType: string | undefined): Record<string, unknown> {
  if ((contentType ?? '').includes('application/x-www-form-urlencoded')) {
    const form = new URLSearchParams(raw);
    const payload = form.get('payload');
    if (payload !== null) {
      try {
        const parsed = parseJson(payload, 'payload') as unknown;
        if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
      } catch (err) {
        if (err instanceof ValidationError) throw err;
      }
      throw new ValidationError('payload is not a JSON object', [{ path: 'payload', message: 'must be a JSON object' }]);
    }
    return Object.fromEntries(form.entries());
  }
  try {
    const parsed = parseJson(raw) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch (err) {
    if (err instanceof ValidationError) throw err;
  }
  throw new ValidationError('body is not a JSON object', [{ path: '(body)', message: 'must be a JSON object or a form with payload' }]);
}

export interface FastifyReceiverOptions {
  signingSecret: string;
  pool: Pool;
  logger: Logger;
  now?: () => number;
}

export class FastifyReceiver implements Receiver {
  private app: App | undefined;
  private readonly now: () => number;

  constructor(private readonly options: FastifyReceiverOptions) {
    this.now = options.now ?? Date.now;
  }

  init(app: App): void {
    this.app = app;
  }

  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  register(server: FastifyInstance): void {
    server.post(SLACK_EVENTS_PATH, (request, reply) => this.handle(request, reply));
  }

  private async handle(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const log = this.options.logger;
    const raw = Buffer.isBuffer(request.body) ? request.body.toString('utf8') : '';
    const header = (name: string) => {
      const v = request.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const signature = header('x-slack-signature');
    try {
      verifySlackSignature({ signingSecret: this.options.signingSecret, rawBody: raw, signature, timestamp: header('x-slack-request-timestamp'), nowMs: this.now() });
    } catch (err) {
      log.warn({ err: coerceError(err).message, ip: request.ip }, 'Slack request refused: bad signature');
      return reply.code(401).send({ error: `invalid Slack request: ${coerceError(err).message}` });
    }
    let body: Record<string, unknown>;
    try {
      body = parseSlackBody(raw, header('content-type'));
    } catch (err) {
      const details = err instanceof ValidationError ? err.details : [];
      return reply.code(400).send({ error: coerceError(err).message, details });
    }
    if (body.ssl_check) return reply.code(200).send();
    if (body.type === 'url_verification') return reply.code(200).send({ challenge: body.challenge });

    try {
      // Keyed on the HMAC itself, not the header text, so no respelling of a signature replays it.
      const fresh = await this.options.pool.query(Q.REMEMBER_SIGNATURE, [signatureDigest(signature!)]);
      if (fresh.rowCount === 0) {
        log.warn({ ip: request.ip }, 'Slack request refused: replayed signature');
        return reply.code(401).send({ error: 'invalid Slack request: this signed request was already received (replay)' });
      }
    } catch (err) {
      if (isDatabaseUnavailable(err)) return reply.code(503).send({ error: 'database unavailable; try again' });
      throw err;
    }

    const app = this.app;
    if (!app) return reply.code(503).send({ error: 'Slack app not initialised' });
    let resolveAck!: (response: unknown) => void;
    const acked = new Promise<{ response: unknown }>((resolve) => (resolveAck = (response) => resolve({ response })));
    let isAcked = false;
    const event: ReceiverEvent = {
      body,
      ack: async (response?: unknown) => {
        if (isAcked) return;
        isAcked = true;
        resolveAck(response);
      },
      ...(header('x-slack-retry-num') !== undefined && { retryNum: Number(header('x-slack-retry-num')) }),
      ...(header('x-slack-retry-reason') !== undefined && { retryReason: header('x-slack-retry-reason') }),
    };
    const processing = app.processEvent(event).then(
      () => 'done' as const,
      (err) => {
        log.error({ err: coerceError(err).message }, 'Slack listener failed');
        return 'failed' as const;
      },
    );
    const deadline = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), ACK_DEADLINE_MS).unref());
    const first = await Promise.race([acked, processing, deadline]);
    if (first === 'failed' && !isAcked) return reply.code(500).send({ error: 'Slack listener failed' });
    if (first === 'late') log.warn({ type: body.type }, 'no Slack listener acked within 2.5 s; answering 200 to meet the 3 s deadline');
    const response = isAcked ? (await acked).response : undefined;
    isAcked = true; // a late ack() has nowhere to go
    if (response === undefined || response === null || response === '') return reply.code(200).send();
    if (typeof response === 'string') return reply.code(200).type('text/plain; charset=utf-8').send(response);
    return reply.code(200).send(response);
  }
}
