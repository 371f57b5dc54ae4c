import { createHmac } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { listCheckpoints } from '../audit/index.js';
import type { Config } from '../config/index.js';
import { ValidationError } from '../errors.js';
import { getRun, listAlerts, listPendingApprovals, listRuns, type Engine } from '../engine/index.js';
import { parseJsonBody, parseWith } from '../ingest/index.js';
import { isReplayRequest, startDryRuns, startRunBody } from '../replay/index.js';
import type { Pool } from '../store/index.js';
import { createRedactor, renderTimeline } from '../timeline/index.js';
import { bearerToken, errorBody, secretsEqual, sendError } from './http.js';

export interface ApiOptions {
  config: Config;
  pool: Pool;
  engine: Engine;
}

const RUN_STATUSES = ['queued', 'running', 'waiting', 'succeeded', 'failed', 'aborted', 'cancelled'] as const;

const limit = z.coerce.number().int().min(1).max(500).default(50);
const runsQuery = z.object({ status: z.enum(RUN_STATUSES).optional(), playbook: z.string().min(1).optional(), limit });
const alertsQuery = z.object({ status: z.enum(['firing', 'resolved']).optional(), source: z.string().min(1).optional(), limit });
const checkpointsQuery = z.object({ limit, before: z.coerce.number().int().min(1).optional() });
const timelineQuery = z.object({ format: z.enum(['json', 'md']).default('json') });
// `via` names the client in the actor string (`cli:bob` for `firebreak approve`); the console is the default.
const approvalBody = z.object({ decision: z.enum(['approve', 'reject']), user: z.string().trim().min(1).max(200), via: z.enum(['console', 'cli']).default('console') });
const abortBody = z.object({ reason: z.string().max(2_000).optional(), user: z.string().trim().min(1).max(200).optional(), via: z.enum(['console', 'cli']).default('console') }).default({ via: 'console' });

export const API_COOKIE = 'firebreak_session';
/** How long a console login lasts. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

function sessionMac(token: string, expires: number): string {
  return createHmac('sha256', token).update(`firebreak-session.v1.${expires}`).digest('base64url');
}

/**
 * The console's session cookie value: an expiry and an HMAC keyed by the API
 * token, so the cookie never holds the token itself and changing the token
 * logs everyone out.
 */
export function createSessionValue(token: string, now = Date.now()): string {
  const expires = Math.floor((now + SESSION_TTL_MS) / 1000);
  return `v1.${expires}.${sessionMac(token, expires)}`;
}

export function isValidSession(value: string, token: string, now = Date.now()): boolean {
  const match = /^v1\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value);
  if (!match) return false;
  const expires = Number(match[1]);
  return expires * 1000 > now && secretsEqual(match[2]!, sessionMac(token, expires));
}

/** Whether the request carries the API token (Bearer header, or a valid console session cookie). */
export function isAuthorised(request: FastifyRequest, config: Config): boolean {
  const token = config.apiToken;
  if (!token) return true;
  const bearer = bearerToken(request);
  if (bearer !== undefined) return secretsEqual(bearer, token);
  const session = readCookie(request, API_COOKIE);
  return session !== undefined && isValidSession(session, token);
}

export function readCookie(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k !== name) continue;
    try {
      return decodeURIComponent(v.join('='));
    } catch {
      return undefined; // malformed escape: no session, not a 500
    }
  }
  return undefined;
}

function optionalBody(request: FastifyRequest): unknown {
  const raw = request.body as Buffer | undefined;
  return raw && raw.length > 0 ? parseJsonBody(raw) : {};
}

export function registerApi(app: FastifyInstance, options: ApiOptions): void {
  const { pool, engine, config } = options;
  // Events are redacted when written; this second pass also hides values that became secrets later.
  const redact = createRedactor(config.secrets.values());

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!request.url.startsWith('/api/')) return;
    if (!isAuthorised(request, config)) {
      return reply.code(401).header('www-authenticate', 'Bearer').send(errorBody('missing or invalid API token', [{ path: 'Authorization', message: 'expected Authorization: Bearer <FIREBREAK_API_TOKEN>' }]));
    }
    return undefined;
  });

  const handle =
    <T>(fn: (request: FastifyRequest, reply: FastifyReply) => Promise<T>) =>
    async (request: FastifyRequest, reply: FastifyReply) => {
      try {
        return await fn(request, reply);
      } catch (err) {
        return sendError(reply, err);
      }
    };

  app.get('/api/alerts', handle(async (request) => ({ items: await listAlerts(pool, parseWith(alertsQuery, request.query, 'query')) })));
  app.get('/api/runs', handle(async (request) => ({ items: await listRuns(pool, parseWith(runsQuery, request.query, 'query')) })));
  // Signed chain checkpoints, newest first; `before` pages back (docs/audit.md). A read, like GET /api/runs.
  app.get('/api/audit/checkpoints', handle(async (request) => ({ items: await listCheckpoints(pool, parseWith(checkpointsQuery, request.query, 'query')) })));
  app.get('/api/runs/:id', handle(async (request) => getRun(pool, (request.params as { id: string }).id)));
  app.get(
    '/api/runs/:id/timeline',
    handle(async (request, reply) => {
      const { format } = parseWith(timelineQuery, request.query, 'query');
      const timeline = await renderTimeline(pool, (request.params as { id: string }).id, format, { redact });
      if (format === 'md') return reply.type('text/markdown; charset=utf-8').send(timeline);
      return timeline;
    }),
  );
  app.post(
    '/api/runs',
    handle(async (request, reply) => {
      const body = parseWith(startRunBody, optionalBody(request), 'run request');
      const replay = isReplayRequest(body);
      if (body.dryRun || replay || body.stub || body.stubs || body.noGather !== undefined) {
        // Dry runs (and replays of an alert or episode): see src/replay.
        const started = await startDryRuns({ engine, db: pool }, body);
        const created = started.runs.some((r) => r.created);
        if (!replay) return reply.code(created ? 201 : 200).send({ ...(await getRun(pool, started.runs[0]!.runId)), created });
        const items = await Promise.all(started.runs.map(async (r) => ({ ...(await getRun(pool, r.runId)), created: r.created, matched: r.matched, fingerprint: r.fingerprint })));
        return reply.code(created ? 201 : 200).send({ items, alerts: started.alerts });
      }
      if (!body.playbook) throw new ValidationError('name the playbook to run', [{ path: 'playbook', message: 'required' }]);
      const result = await engine.startRun({
        playbook: body.playbook,
        params: body.params,
        startedBy: `${body.via}:${body.user ?? 'anonymous'}`,
        ...(body.idempotencyKey && { dedupKey: `api:${body.idempotencyKey}` }),
      });
      return reply.code(result.created ? 201 : 200).send({ ...(await getRun(pool, result.runId)), created: result.created });
    }),
  );
  app.post(
    '/api/runs/:id/abort',
    handle(async (request, reply) => {
      const body = parseWith(abortBody, optionalBody(request), 'abort request');
      const id = (request.params as { id: string }).id;
      const result = await engine.abortRun(id, `${body.via}:${body.user ?? 'anonymous'}`, body.reason);
      // Aborted at once (it never started): 200. Otherwise its worker compensates and finishes it: 202.
      return reply.code(result.status === 'aborted' ? 200 : 202).send({ id, ...result });
    }),
  );
  app.get('/api/approvals', handle(async () => ({ items: await listPendingApprovals(pool) })));
  app.post(
    '/api/approvals/:id',
    handle(async (request, reply) => {
      const body = parseWith(approvalBody, optionalBody(request), 'approval answer');
      const result = await engine.answerApproval({ approvalId: (request.params as { id: string }).id, decision: body.decision, user: `${body.via}:${body.user}` });
      if (result.outcome === 'refused') return reply.code(403).send({ ...errorBody(`not allowed: ${result.reason}`), ...result });
      return reply.code(200).send(result);
    }),
  );
}
