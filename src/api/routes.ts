/**
 * The JSON API under /api. Each route declares its access rule where it is
 * registered (see src/access/guard.ts); acts (start, abort, answer, tokens)
 * then ask `firebreak/authorize` as the identity the guard established, which
 * is also the actor recorded. A `user` in a body is never an identity.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { Access, parseTtl, requireIdentity } from '../access/index.js';
import { listCheckpoints } from '../audit/index.js';
import type { Config } from '../config/index.js';
import { ValidationError } from '../errors.js';
import { getRun, listAlerts, listPendingApprovals, listRuns, type Engine } from '../engine/index.js';
import { playbookDetail, playbookRevision, playbookRevisions, playbookSummaries } from './playbooks.js';
import { registerAutomationApi } from './automation.js';
import type { Automation } from '../rails/index.js';
import { registerSilencesApi } from './silences.js';
import { parseWith } from '../ingest/index.js';
import { parseDuration } from '../playbooks/index.js';
import { checkDryRunBody, isReplayRequest, startDryRuns, startRunBody, usesDryRunFields } from '../replay/index.js';
import type { Silences } from '../rails/index.js';
import type { Pool } from '../store/index.js';
import { ACCESS_CHAIN, AUTOMATION_CHAIN, createRedactor, readChainPage, renderTimeline } from '../timeline/index.js';
import { ACT, actingIdentity, errorBody, handle, optionalBody, READ } from './http.js';

export interface ApiOptions {
  config: Config;
  pool: Pool;
  engine: Engine;
  access: Access;
  automation: Automation;
  /** Silences (maintenance windows): POST/GET /api/silences, DELETE /api/silences/:id. */
  silences: Silences;
}

const RUN_STATUSES = ['queued', 'running', 'waiting', 'succeeded', 'failed', 'aborted', 'cancelled'] as const;

const limit = z.coerce.number().int().min(1).max(500).default(50);
const runsQuery = z.object({ status: z.enum(RUN_STATUSES).optional(), playbook: z.string().min(1).optional(), limit, stuck: z.enum(['true', 'false', '1', '0']).optional() });
// `since`: a duration back from now (1h, 7d) or an RFC 3339 time; `before`: episode id to page back from.
const alertsQuery = z.object({
  status: z.enum(['firing', 'resolved']).optional(),
  source: z.string().min(1).optional(),
  limit,
  since: z
    .string()
    .trim()
    .min(1)
    .transform((v, ctx) => {
      const ms = parseDuration(v);
      if (ms !== undefined) return { sinceMs: ms };
      if (/^\d{4}-\d\d-\d\d/.test(v) && !Number.isNaN(Date.parse(v))) return { since: new Date(v).toISOString() };
      ctx.addIssue({ code: 'custom', message: 'must be a duration back from now (30m, 1h, 7d) or an RFC 3339 time' });
      return z.NEVER;
    })
    .optional(),
  before: z.coerce.number().int().min(1).optional(),
});
const pageQuery = z.object({ limit, before: z.coerce.number().int().min(1).optional() });
const timelineQuery = z.object({ format: z.enum(['json', 'md']).default('json') });
// `user` is checked against who authenticated (400 when it differs); `via` (older clients) is ignored.
const bodyUser = z.string().trim().min(1).max(200).optional();
// `as` (the CLI's --as spelled as a body field) is held to the same rule as `user`.
const approvalBody = z.object({ decision: z.enum(['approve', 'reject']), comment: z.string().trim().max(2_000).optional(), user: bodyUser, as: bodyUser });
const abortBody = z.object({ reason: z.string().max(2_000).optional(), user: bodyUser, as: bodyUser }).default({});
const retryBody = z.object({ from: z.string().trim().min(1).max(200).optional(), reason: z.string().max(2_000).optional(), user: bodyUser, as: bodyUser }).default({});
const cancelBody = abortBody;
const tokenBody = z.object({
  user: z.string().trim().min(1).max(64),
  groups: z.array(z.string().trim().min(1).max(64)).max(50).default([]),
  /** `30d`, `12h`; omitted: never expires. */
  ttl: z.string().trim().optional(),
  description: z.string().trim().max(200).optional(),
});
const tokensQuery = z.object({ all: z.enum(['true', 'false', '1', '0']).optional(), user: z.string().min(1).max(64).optional() });

export function registerApi(app: FastifyInstance, options: ApiOptions): void {
  const { pool, engine, config, access, automation } = options;
  // Events are redacted when written; this second pass also hides values that became secrets later.
  const redact = createRedactor(config.secrets.values());

  const read = READ;
  const act = ACT;

  app.get('/api/whoami', read, handle(async (request) => {
    const who = requireIdentity(request);
    return { id: who.id, name: who.name, method: who.method, verified: who.verified, groups: who.groups, mode: access.mode };
  }));
  app.get('/api/alerts', read, handle(async (request) => {
    const { since, ...q } = parseWith(alertsQuery, request.query, 'query');
    return { items: await listAlerts(pool, { ...q, ...since }) };
  }));
  app.get('/api/runs', read, handle(async (request) => {
    const { stuck, ...q } = parseWith(runsQuery, request.query, 'query');
    // ?stuck=true: runs that stopped making progress, each with `stuck: { since, stepId, thresholdMs }`.
    if (stuck === 'true' || stuck === '1') return { items: await engine.listStuckRuns(q) };
    return { items: await listRuns(pool, q) };
  }));
  // Signed chain checkpoints, newest first; `before` pages back (docs/audit.md). A read, like GET /api/runs.
  app.get('/api/audit/checkpoints', read, handle(async (request) => ({ items: await listCheckpoints(pool, parseWith(pageQuery, request.query, 'query')) })));
  // The access chain: decisions that concern no run (refused starts, tokens) and sessions, newest first.
  // Chains that concern no run, newest first: the access chain (decisions, tokens, sessions) and the
  // automation chain (pauses, resumes, silences, breaker trips, repairs).
  const chainRoute = (chainId: string) => handle(async (request) => {
    const q = parseWith(pageQuery, request.query, 'query');
    const events = await readChainPage(pool, chainId, q);
    return { items: events.map((e) => ({ seq: e.seq, time: e.time, kind: e.kind, actor: e.actor, data: redact(e.data) })) };
  });
  app.get('/api/audit/access', read, chainRoute(ACCESS_CHAIN));
  app.get('/api/audit/automation', read, chainRoute(AUTOMATION_CHAIN));
  app.get('/api/runs/:id', read, handle(async (request) => getRun(pool, (request.params as { id: string }).id)));
  // Playbooks and their revisions (docs/playbooks.md "Changing a playbook safely").
  app.get('/api/playbooks', read, handle(async () => ({ items: await playbookSummaries(engine, automation) })));
  app.get('/api/playbooks/:name', read, handle(async (request) => playbookDetail(engine, pool, (request.params as { name: string }).name)));
  app.get('/api/playbooks/:name/revisions', read, handle(async (request) => ({ items: await playbookRevisions(engine, pool, (request.params as { name: string }).name, request.query) })));
  app.get('/api/playbooks/:name/revisions/:hash', read, handle(async (request) => {
    const params = request.params as { name: string; hash: string };
    return playbookRevision(engine, pool, params.name, params.hash, request.query);
  }));
  app.get(
    '/api/runs/:id/timeline',
    read,
    handle(async (request, reply) => {
      const { format } = parseWith(timelineQuery, request.query, 'query');
      const timeline = await renderTimeline(pool, (request.params as { id: string }).id, format, { redact });
      if (format === 'md') return reply.type('text/markdown; charset=utf-8').send(timeline);
      return timeline;
    }),
  );
  app.post(
    '/api/runs',
    act,
    handle(async (request, reply) => {
      const body = parseWith(startRunBody, optionalBody(request), 'run request');
      const who = actingIdentity(request, body);
      const replay = isReplayRequest(body);
      if (body.dryRun || replay || usesDryRunFields(body)) {
        // Dry runs (and replays of an alert or episode): see src/replay. Asked as run.start with dry_run.
        checkDryRunBody(body);
        const started = await access.authorizeStart(who, { playbook: body.playbook ?? null, dry_run: body.dryRun, replay }, (events) => startDryRuns({ engine, db: pool }, body, who.id, events));
        const created = started.runs.some((r) => r.created);
        if (!replay) return reply.code(created ? 201 : 200).send({ ...(await getRun(pool, started.runs[0]!.runId)), created });
        const items = await Promise.all(started.runs.map(async (r) => ({ ...(await getRun(pool, r.runId)), created: r.created, matched: r.matched, fingerprint: r.fingerprint })));
        return reply.code(created ? 201 : 200).send({ items, alerts: started.alerts });
      }
      if (!body.playbook) throw new ValidationError('name the playbook to run', [{ path: 'playbook', message: 'required' }]);
      engine.findPlaybook(body.playbook); // 404 for an unknown playbook before asking the policy
      const result = await access.startRun(engine, who, {
        playbook: body.playbook,
        params: body.params,
        ...(body.idempotencyKey && { dedupKey: `api:${body.idempotencyKey}` }),
      });
      return reply.code(result.created ? 201 : 200).send({ ...(await getRun(pool, result.runId)), created: result.created });
    }),
  );
  app.post(
    '/api/runs/:id/abort',
    act,
    handle(async (request, reply) => {
      const body = parseWith(abortBody, optionalBody(request), 'abort request');
      const who = actingIdentity(request, body);
      const id = (request.params as { id: string }).id;
      const result = await access.abortRun(engine, who, id, body.reason);
      // Aborted at once (it never started): 200. Otherwise its worker compensates and finishes it: 202.
      return reply.code(result.status === 'aborted' ? 200 : 202).send({ id, ...result });
    }),
  );
  // The kill switch and what it holds (docs/safety-rails.md).
  registerAutomationApi(app, automation);
  app.post(
    '/api/runs/:id/retry',
    act,
    handle(async (request) => {
      const body = parseWith(retryBody, optionalBody(request), 'retry request');
      const who = actingIdentity(request, body);
      const id = (request.params as { id: string }).id;
      const result = await access.retryRun(engine, who, id, { ...(body.from !== undefined && { from: body.from }), ...(body.reason !== undefined && { reason: body.reason }) });
      return { ...(await getRun(pool, id)), retried: result };
    }),
  );
  app.post(
    '/api/runs/:id/cancel',
    act,
    handle(async (request) => {
      const body = parseWith(cancelBody, optionalBody(request), 'cancel request');
      const who = actingIdentity(request, body);
      const id = (request.params as { id: string }).id;
      const result = await access.cancelRun(engine, who, id, body.reason);
      return { ...(await getRun(pool, id)), cancelled: result };
    }),
  );
  // Silences (docs/api.md "Silences"): src/api/silences.ts.
  registerSilencesApi(app, { silences: options.silences });
  app.get('/api/approvals', read, handle(async () => ({ items: await listPendingApprovals(pool) })));
  app.post(
    '/api/approvals/:id',
    act,
    handle(async (request, reply) => {
      const body = parseWith(approvalBody, optionalBody(request), 'approval answer');
      const who = actingIdentity(request, body);
      const result = await access.answerApproval(engine, who, { approvalId: (request.params as { id: string }).id, decision: body.decision, ...(body.comment && { comment: body.comment }) });
      if (result.outcome === 'refused') return reply.code(403).send({ ...errorBody(`not allowed: ${result.reason}`), ...result });
      return reply.code(200).send({ ...result, actor: who.id });
    }),
  );

  // Personal tokens: `firebreak token create|list|revoke` with FIREBREAK_TOKEN.
  app.get(
    '/api/tokens',
    act,
    handle(async (request) => {
      const q = parseWith(tokensQuery, request.query, 'query');
      return { items: await access.listTokens(requireIdentity(request), { includeInactive: q.all === 'true' || q.all === '1', ...(q.user && { user: q.user }) }) };
    }),
  );
  app.post(
    '/api/tokens',
    act,
    handle(async (request, reply) => {
      const body = parseWith(tokenBody, optionalBody(request), 'token request');
      const { token, record } = await access.createToken(requireIdentity(request), {
        user: body.user,
        groups: body.groups,
        ...(body.ttl !== undefined && { ttlSeconds: parseTtl(body.ttl) }),
        ...(body.description && { description: body.description }),
      });
      return reply.code(201).header('cache-control', 'no-store').send({ token, ...record });
    }),
  );
  app.delete(
    '/api/tokens/:id',
    act,
    handle(async (request) => {
      const { record, sessionsEnded } = await access.revokeToken(requireIdentity(request), (request.params as { id: string }).id);
      return { ...record, sessionsEnded };
    }),
  );
}
