/**
 * Signing in to the console, and the headers every page carries.
 *
 * - Single sign-on (OpenID Connect, when FIREBREAK_OIDC_ISSUER is set):
 *   `/auth/oidc/login` sends the browser to the provider, `/auth/oidc/callback`
 *   completes the code flow (PKCE, state, nonce; src/access/oidc.ts).
 * - A token (a personal token, or FIREBREAK_API_TOKEN as the read-mostly
 *   service) typed into the login form.
 * - Local mode (no authentication configured): a name, recorded unverified.
 *
 * Each opens a server-side session (src/access/sessions.ts): an HttpOnly,
 * SameSite=Strict cookie holding a random id whose hash is in Postgres.
 * Logout ends it there. Failed logins are throttled per client and per user
 * (429 with Retry-After). Who may call what is declared on each route (src/access/guard.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  createSession,
  endSession,
  getToken,
  identity,
  LoginError,
  loginRetryAfter,
  looksLikePersonalToken,
  OIDC_BROWSER_COOKIE,
  OIDC_CALLBACK_PATH,
  OIDC_LOGIN_TTL_SECONDS,
  OIDC_PATH,
  parseName,
  pruneLoginFailures,
  pruneSessions,
  readSession,
  recordLoginFailure,
  secretsEqual,
  serviceIdentity,
  sessionValidity,
  SESSION_COOKIE,
  SESSION_TTL_SECONDS,
  sha256Hex,
  staleTokenReason,
  tokenIdOf,
  verifyToken,
  type Access,
  type Identity,
  type OidcLogin,
} from '../access/index.js';
import { isLocalMode, type Config } from '../config/index.js';
import { ValidationError } from '../errors.js';
import type { Pool } from '../store/index.js';
import { continuePage, loginPage } from './pages.js';

/**
 * A local path to go back to after login; anything else (other hosts, "//x",
 * "/\\x") becomes "/". Printable ASCII only: it goes out in a Location header,
 * where a control or non-Latin-1 character would make Node throw (a 500), and
 * browsers drop tabs and newlines (so "/\t/evil" would become "//evil").
 */
export function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/(?![/\\])[\x21-\x7e]*$/.test(next) ? next : '/';
}

function isHttps(request: FastifyRequest, config: Config): boolean {
  return request.protocol === 'https' || config.publicUrl.startsWith('https:');
}

function formBody(request: FastifyRequest): URLSearchParams {
  const body = request.body as Buffer | undefined;
  return new URLSearchParams(body && body.length <= 16 * 1024 ? body.toString('utf8') : '');
}

export interface SecurityOptions {
  config: Config;
  pool: Pool;
  access: Access;
  /** Set when OpenID Connect is configured. */
  oidc: OidcLogin | undefined;
}

export function registerSecurity(app: FastifyInstance, options: SecurityOptions): void {
  const { config, pool, access, oidc } = options;
  const local = isLocalMode(config);
  const serviceHash = config.apiToken ? sha256Hex(config.apiToken) : undefined;
  const page = (next: string, error?: string) => loginPage({ next, sso: oidc !== undefined, local, ...(error && { error }) });
  const setSession = (request: FastifyRequest, reply: FastifyReply, value: string, maxAge: number) =>
    reply.setCookie(SESSION_COOKIE, value, { path: '/', httpOnly: true, sameSite: 'strict', maxAge, secure: isHttps(request, config) });

  /**
   * Open a session for `who`, set its cookie and record it on the access
   * chain. A session this browser already held ends first: a new login on a
   * shared browser must not leave the previous person's session live.
   */
  async function signIn(request: FastifyRequest, reply: FastifyReply, who: Identity, via: string): Promise<void> {
    const previous = request.cookies[SESSION_COOKIE];
    const replaced = previous ? await endSession(pool, previous, `replaced by a login as ${who.id}`) : undefined;
    if (replaced) await access.record({ kind: 'session.ended', actor: replaced, data: { reason: 'replaced by a new login in the same browser', by: who.id } });
    const { cookie } = await createSession(pool, who, { ...(who.method === 'service' && serviceHash && { credentialHash: serviceHash }) });
    setSession(request, reply, cookie, SESSION_TTL_SECONDS);
    await access.record({ kind: 'session.started', actor: who.id, data: { via, method: who.method, verified: who.verified, groups: who.groups, client: request.ip } });
    // Housekeeping rides along with logins: dead sessions, stale login windows.
    void pruneSessions(pool).then(() => pruneLoginFailures(pool)).catch((err: Error) => request.log.warn({ err: err.message }, 'session pruning failed'));
  }

  app.get('/login', { config: { access: 'public' } }, async (request, reply) => {
    const next = safeNext((request.query as { next?: unknown }).next);
    const cookie = request.cookies[SESSION_COOKIE];
    if (cookie && (await readSession(pool, cookie, sessionValidity(config)))) return reply.redirect(next, 303);
    return sendPage(reply, 200, page(next));
  });

  app.post('/login', { config: { access: 'login' } }, async (request, reply) => {
    const form = formBody(request);
    const next = safeNext(form.get('next'));
    const fromConsole = request.headers['x-firebreak-console'] === '1';
    const token = form.get('token')?.trim() ?? '';
    const name = form.get('name');

    if (!token && name !== null) {
      // Local mode: a name, not a proof.
      if (!local) return sendPage(reply, 400, page(next, 'Sign in with a token or single sign-on: names are only for local mode.'));
      let who: Identity;
      try {
        who = identity('local', parseName(name, 'name'));
      } catch (err) {
        if (fromConsole) return reply.code(400).send({ error: (err as ValidationError).message, details: (err as ValidationError).details });
        return sendPage(reply, 400, page(next, 'Use letters, digits and . _ @ + - (up to 64).'));
      }
      await signIn(request, reply, who, 'name');
      if (fromConsole) return reply.code(200).send({ id: who.id, name: who.name, verified: who.verified });
      return reply.redirect(next, 303);
    }

    // Per user: the owner of the personal token presented (its id is readable), or the service.
    const tokenId = tokenIdOf(token);
    const owner = tokenId ? await getToken(pool, tokenId).then((t) => t.user, () => undefined) : config.apiToken && token && secretsEqual(token, config.apiToken) ? 'service' : undefined;
    const keys = { client: request.ip, ...(owner && { user: owner }) };
    const retryAfter = await loginRetryAfter(pool, keys);
    if (retryAfter > 0) {
      request.log.warn({ ip: request.ip }, 'console login throttled');
      return sendPage(reply.header('retry-after', String(retryAfter)), 429, page(next, `Too many failed logins; try again in ${Math.ceil(retryAfter / 60)} min.`));
    }
    const who = !token ? undefined : config.apiToken && secretsEqual(token, config.apiToken) ? serviceIdentity() : looksLikePersonalToken(token) ? await verifyToken(pool, token) : undefined;
    if (!who) {
      // The real token, revoked or expired, is not a guess: say so, and do not count it.
      const stale = token ? await staleTokenReason(pool, token) : undefined;
      if (stale) return sendPage(reply, 401, page(next, `That token was ${stale}; ask for a new one.`));
      if (token) await recordLoginFailure(pool, keys);
      request.log.warn({ ip: request.ip }, 'console login refused: wrong token');
      return sendPage(reply, 401, page(next, token ? 'That token is not right.' : 'Enter a token.'));
    }
    await signIn(request, reply, who, who.method === 'service' ? 'service token' : 'personal token');
    return reply.redirect(next, 303);
  });

  app.post('/logout', { config: { access: 'login' } }, async (request, reply) => {
    const cookie = request.cookies[SESSION_COOKIE];
    const actor = cookie ? await endSession(pool, cookie, 'logout') : undefined;
    if (actor) await access.record({ kind: 'session.ended', actor, data: { reason: 'logout' } });
    setSession(request, reply, '', 0);
    return reply.redirect(local ? '/' : '/login', 303);
  });

  if (!oidc) return;

  app.get(`${OIDC_PATH}/login`, { config: { access: 'public' } }, async (request, reply) => {
    const next = safeNext((request.query as { next?: unknown }).next);
    try {
      const { url, browser } = await oidc.begin(next);
      // Lax: the provider's redirect back is a cross-site navigation, which must carry it.
      reply.setCookie(OIDC_BROWSER_COOKIE, browser, { path: OIDC_PATH, httpOnly: true, sameSite: 'lax', maxAge: OIDC_LOGIN_TTL_SECONDS, secure: isHttps(request, config) });
      return reply.redirect(url, 303);
    } catch (err) {
      if (err instanceof LoginError) return sendPage(reply, 503, page(next, err.message));
      throw err;
    }
  });

  app.get(OIDC_CALLBACK_PATH, { config: { access: 'public' } }, async (request, reply) => {
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?') + 1) : '';
    reply.clearCookie(OIDC_BROWSER_COOKIE, { path: OIDC_PATH });
    try {
      const { identity: who, next } = await oidc.complete(query, request.cookies[OIDC_BROWSER_COOKIE]);
      await signIn(request, reply, who, 'single sign-on');
      return sendPage(reply, 200, continuePage(safeNext(next)));
    } catch (err) {
      if (err instanceof LoginError) return sendPage(reply, 401, page('/', err.message));
      throw err;
    }
  });
}

/** Headers every console page carries: no framing, no inline script, nothing from other origins. */
export const PAGE_HEADERS: Record<string, string> = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
};

export function sendPage(reply: FastifyReply, status: number, body: { toString(): string }): FastifyReply {
  return reply.code(status).headers(PAGE_HEADERS).send(body.toString());
}
