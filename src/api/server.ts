import fastifyCookie from '@fastify/cookie';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { installGuard, originForm } from '../access/index.js';
import { maskUrlCredentials, type Config } from '../config/index.js';
import type { Ingestor } from '../ingest/index.js';
import type { Pool } from '../store/index.js';
import { errorBody } from './http.js';
import { registerHooks } from './hooks.js';

/** 1 MiB: the contract's webhook body limit (413 beyond). */
export const BODY_LIMIT = 1024 * 1024;

export interface ReadinessCheck {
  name: string;
  check: () => Promise<{ ok: boolean; detail?: string }> | { ok: boolean; detail?: string };
}

export interface ServerDeps {
  config: Config;
  logger: Logger;
  pool: Pool;
  ingestor: Ingestor;
  readiness?: ReadinessCheck[];
  /** Adds more routes (API, console, Slack) once their concerns exist. */
  extend?: (app: FastifyInstance) => void | Promise<void>;
}

export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    // fastify bundles its own pino types; ours is API-compatible.
    loggerInstance: deps.logger as unknown as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT,
    // Per-request logs would be noise at webhook rates; errors are logged where they are handled.
    logController: new LogController({ disableRequestLogging: true }),
    // Alertmanager and friends retry on 5xx; keep idle sockets short-lived but allow keep-alive.
    keepAliveTimeout: 10_000,
    return503OnClosing: true,
    // Routes, redirects and `next` links see `/path?query` even for `GET http://host/path` (the guard checks that host).
    rewriteUrl: (req) => originForm(req.url ?? '/'),
    // X-Forwarded-For names the client only when a listed proxy sent it; otherwise anyone could claim any address.
    ...(deps.config.trustedProxies.length > 0 && { trustProxy: deps.config.trustedProxies }),
  });

  // Bodies arrive raw: webhook signatures (Grafana, PagerDuty, Slack) are computed over the exact bytes,
  // and our own JSON parsing gives field-level 400s instead of a generic framework error.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: { statusCode?: number; code?: string; message: string }, request, reply) => {
    if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(413).send(errorBody(`request body exceeds ${BODY_LIMIT} bytes`, [{ path: '(body)', message: 'too large' }]));
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send(errorBody(err.message));
    }
    request.log.error({ err }, 'unhandled error');
    return reply.code(500).send(errorBody('internal error'));
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send(errorBody(`no route for ${request.method} ${request.url.split('?')[0]}`)));

  // Cookies parsed by a well-kept plugin (signing is not needed: session ids are random and checked in Postgres).
  await app.register(fastifyCookie);
  // First, before any route: Host allow-list, each route's declared access rule, who is asking, CSRF.
  installGuard(app, { config: deps.config, pool: deps.pool });

  app.get('/healthz', { config: { access: 'public' } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { access: 'public' } }, async (_request, reply) => {
    const checks: Record<string, { ok: boolean; detail?: string }> = {};
    checks.database = await deps.pool
      .query('select 1')
      .then(() => ({ ok: true }))
      .catch((err: Error) => ({ ok: false, detail: maskUrlCredentials(err.message) }));
    for (const c of deps.readiness ?? []) {
      try {
        checks[c.name] = await c.check();
      } catch (err) {
        checks[c.name] = { ok: false, detail: (err as Error).message };
      }
    }
    const ready = Object.values(checks).every((c) => c.ok);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });

  registerHooks(app, { config: deps.config, ingestor: deps.ingestor });
  await deps.extend?.(app);
  return app;
}
