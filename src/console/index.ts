/**
 * The web console at `/`: runs (filters, newest first, live updates over
 * server-sent events), a run page drawn on a time axis beside its event
 * table, pending approvals with Approve / Reject, and abort. Server-rendered
 * HTML plus one small script; no framework, nothing from a CDN.
 *
 * Writes go through the public API (`POST /api/approvals/:id`,
 * `POST /api/runs/:id/abort`) as the session's identity, so the console is
 * checked by the same `firebreak/authorize` and `firebreak/approve` policies
 * as Slack, and by the route guard's CSRF rules (src/access/guard.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { authenticate, requireIdentity, type Access, type OidcLogin } from '../access/index.js';
import { isLocalMode, type Config } from '../config/index.js';
import { diffRevisions, getRevision, getRun, listAlerts, listPendingApprovals, listRuns, type Engine } from '../engine/index.js';
import type { Automation } from '../rails/index.js';
import { alertsPage } from './alerts.js';
import { automationPage } from './automation.js';
import { NotFoundError } from '../errors.js';
import type { Silences } from '../rails/index.js';
import type { Pool } from '../store/index.js';
import { buildTimelineView, createRedactor } from '../timeline/index.js';
import { CONSOLE_CSS, CONSOLE_JS, FAVICON_SVG } from './assets.js';
import type { SafeHtml } from './html.js';
import { LiveFeed, registerEventStream } from './live.js';
import { ATTENTION_FAILED_MS, messagePage, RUN_STATUSES, runLive, runPage, runsLive, runsPage, type AttentionItem, type RevisionInfo, type RunsPageData, type Viewer } from './pages.js';
import { registerSecurity, sendPage, PAGE_HEADERS } from './security.js';
import { silencesLive, silencesPage } from './silences.js';

export { safeNext } from './security.js';
export { LiveFeed, type RunChange } from './live.js';
export { escapeHtml, html, type SafeHtml } from './html.js';
export { timeAxisSvg } from './svg.js';

export interface ConsoleOptions {
  config: Config;
  pool: Pool;
  engine: Engine;
  access: Access;
  /** The kill switch: a banner on every page while automation is paused. */
  automation?: Automation;
  /** The Silences page (/silences); absent: no such page. */
  silences?: Silences;
  /** Set when OpenID Connect single sign-on is configured. */
  oidc?: OidcLogin;
  logger: Logger;
  /** How often the live feed looks for events other replicas wrote (ms). */
  pollMs?: number;
  now?: () => number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const LIMITS = [25, 50, 100, 200];

function parseFilters(query: Record<string, unknown>): { filters: RunsPageData['filters']; problem?: string } {
  const one = (v: unknown) => (typeof v === 'string' ? v.trim() : Array.isArray(v) ? String(v[0] ?? '').trim() : '');
  const status = one(query.status);
  const playbook = one(query.playbook);
  const limit = Number(one(query.limit) || 50);
  const problems: string[] = [];
  const filters: RunsPageData['filters'] = { limit: LIMITS.includes(limit) ? limit : 50 };
  if (status) {
    if ((RUN_STATUSES as readonly string[]).includes(status)) filters.status = status;
    else problems.push(`Unknown status "${status}"; showing every status.`);
  }
  if (playbook) {
    if (playbook.length <= 200) filters.playbook = playbook;
    else problems.push('Playbook name is too long; showing every playbook.');
  }
  return { filters, ...(problems.length > 0 && { problem: problems.join(' ') }) };
}

/** Register the console's pages, assets, login and live event stream on the app. */
export function registerConsole(app: FastifyInstance, options: ConsoleOptions): { feed: LiveFeed } {
  const { config, pool, engine } = options;
  const now = options.now ?? Date.now;
  const local = isLocalMode(config);
  const viewerOf = (request: FastifyRequest): Viewer => {
    const who = requireIdentity(request);
    const named = !(who.method === 'local' && request.authVia !== 'session');
    const pauses = options.automation?.pauses ?? [];
    return { actor: named ? who.id : null, verified: who.verified, session: request.authVia === 'session', local, ...(pauses.length > 0 && { pauses }) };
  };
  const redact = createRedactor(config.secrets.values());
  const feed = new LiveFeed(pool, options.logger.child({ component: 'console' }), options.pollMs ?? Math.max(250, Math.min(config.pollMs * 2, 2_000)));
  engine.onEvent(() => feed.poke());
  app.addHook('onClose', async () => feed.close());

  registerSecurity(app, { config, pool, access: options.access, oidc: options.oidc });
  // A stream ends when its session is logged out or its token revoked (checked again as it writes).
  registerEventStream(app, feed, { stillAuthorized: async (request) => !('status' in (await authenticate(request, config, pool))) });

  const asset = (type: string, body: string) => async (_request: FastifyRequest, reply: FastifyReply) =>
    reply.headers({ 'content-type': type, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' }).send(body);
  const open = { config: { access: 'public' as const } };
  const page = { config: { access: 'page' as const } };
  app.get('/console/app.js', open, asset('text/javascript; charset=utf-8', CONSOLE_JS));
  app.get('/console/app.css', open, asset('text/css; charset=utf-8', CONSOLE_CSS));
  app.get('/console/favicon.svg', open, asset('image/svg+xml', FAVICON_SVG));
  app.get('/favicon.ico', open, async (_request, reply) => reply.redirect('/console/favicon.svg', 301));

  const fragment = (request: FastifyRequest) => request.headers['x-firebreak-fragment'] === '1';
  const send = (reply: FastifyReply, status: number, page: SafeHtml) => sendPage(reply, status, page);
  const failed = (request: FastifyRequest, reply: FastifyReply, err: unknown) => {
    if (err instanceof NotFoundError) return send(reply, 404, messagePage('Not found', err.message, viewerOf(request)));
    request.log.error({ err }, 'console page failed');
    const message = (err as { code?: string }).code?.startsWith('08') || /connect|terminat/i.test((err as Error).message) ? 'The database is unreachable; try again shortly.' : 'Something went wrong rendering this page; the server log has details.';
    return reply.code(503).headers(PAGE_HEADERS).header('retry-after', '5').send(messagePage('Temporarily unavailable', message, viewerOf(request)).toString());
  };

  app.get('/', page, async (request, reply) => {
    try {
      const { filters, problem } = parseFilters(request.query as Record<string, unknown>);
      const [runs, approvals, recent, stuck, failed] = await Promise.all([
        listRuns(pool, filters),
        listPendingApprovals(pool),
        filters.playbook || filters.status ? listRuns(pool, { limit: 200 }) : Promise.resolve(undefined),
        engine.listStuckRuns({ limit: 20 }),
        listRuns(pool, { status: 'failed', limit: 20 }),
      ]);
      const playbooks = [...new Set((recent ?? runs).map((r) => r.playbook))].sort();
      const at = now();
      // Stuck runs, then runs that failed in the last day and were not retried since (a retry changes their status).
      const attention: AttentionItem[] = [
        ...stuck.map(({ stuck: why, ...run }) => ({ run, stuck: why })),
        ...failed.filter((r) => !r.dryRun && r.finishedAt !== null && at - Date.parse(r.finishedAt) < ATTENTION_FAILED_MS).map((run) => ({ run })),
      ];
      const data: RunsPageData = { attention, runs, approvals, filters, playbooks, now: at, ...(problem && { problem }) };
      return send(reply, 200, fragment(request) ? runsLive(data) : runsPage(data, viewerOf(request)));
    } catch (err) {
      return failed(request, reply, err);
    }
  });

  /** The run's revision against the playbook loaded now, with the line diff between them. */
  const revisionInfo = async (playbook: string, hash: string): Promise<RevisionInfo> => {
    const current = (await engine.currentPlaybooks()).find((c) => c.playbook.name === playbook)?.revision;
    if (!current || current === hash) return { hash, ...(current && { current }), diff: '' };
    const [was, now] = await Promise.all([getRevision(pool, hash), getRevision(pool, current)]);
    return { hash, current, diff: diffRevisions(was, now) };
  };

  if (options.automation) {
    const automation = options.automation;
    app.get('/automation', page, async (request, reply) => {
      try {
        return send(reply, 200, automationPage({ status: await automation.status(), now: now() }, viewerOf(request)));
      } catch (err) {
        return failed(request, reply, err);
      }
    });
  }

  app.get('/alerts', page, async (request, reply) => {
    try {
      const alerts = await listAlerts(pool, { limit: 100 });
      return send(reply, 200, alertsPage({ alerts, now: now() }, viewerOf(request)));
    } catch (err) {
      return failed(request, reply, err);
    }
  });

  app.get('/runs', open, async (request, reply) => reply.redirect(`/${request.url.slice('/runs'.length)}`, 301));

  app.get('/runs/:id', page, async (request, reply) => {
    const id = (request.params as { id: string }).id;
    try {
      if (!UUID.test(id)) throw new NotFoundError(`run ${id} not found`);
      const [run, view] = await Promise.all([getRun(pool, id), buildTimelineView(pool, id, { now, redact })]);
      const data = { run, view, now: now(), ...(run.revision && { revision: await revisionInfo(run.playbook, run.revision) }) };
      return send(reply, 200, fragment(request) ? runLive(data) : runPage(data, viewerOf(request)));
    } catch (err) {
      return failed(request, reply, err);
    }
  });
  // Silences (maintenance windows): the list with Expire buttons and the add form; both act through /api/silences.
  const silences = options.silences;
  if (silences) {
    app.get('/silences', page, async (request, reply) => {
      try {
        const data = { silences: await silences.list({ state: 'current' }), now: now() };
        return send(reply, 200, fragment(request) ? silencesLive(data) : silencesPage(data, viewerOf(request)));
      } catch (err) {
        return failed(request, reply, err);
      }
    });
  }
  return { feed };
}
