/**
 * Who may use the console and how its writes stay CSRF-safe.
 *
 * With FIREBREAK_API_TOKEN set, a login form exchanges the token for an
 * HttpOnly, SameSite=Strict session cookie (an HMAC, never the token itself).
 * State-changing requests are refused when they come from another origin
 * (Origin / Sec-Fetch-Site), and a cookie-authenticated API write must also
 * carry the X-Firebreak-Console header, which a cross-site page cannot add
 * without a CORS preflight this server never grants. Scripts using a Bearer
 * token send no cookie and are unaffected.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody, secretsEqual, bearerToken } from '../api/http.js';
import { API_COOKIE, SESSION_TTL_MS, createSessionValue, isAuthorised, readCookie } from '../api/routes.js';
import type { Config } from '../config/index.js';
import { loginPage } from './pages.js';

export const CONSOLE_HEADER = 'x-firebreak-console';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const pathOf = (request: FastifyRequest): string => request.url.split('?')[0] ?? '/';

/** The origins this server answers as: the Host it was reached on, and FIREBREAK_PUBLIC_URL. */
function isOwnOrigin(origin: string, request: FastifyRequest, config: Config): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // includes the opaque "null" origin
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (request.headers.host && url.host === request.headers.host) return true;
  try {
    return url.origin === new URL(config.publicUrl).origin;
  } catch {
    return false;
  }
}

/** Why a state-changing request must be refused as a possible CSRF, or undefined when it is fine. */
export function csrfProblem(request: FastifyRequest, config: Config): string | undefined {
  if (SAFE_METHODS.has(request.method)) return undefined;
  const path = pathOf(request);
  if (!(path.startsWith('/api/') || path === '/login' || path === '/logout')) return undefined;
  const origin = request.headers.origin;
  if (origin !== undefined && !isOwnOrigin(origin, request, config)) return `cross-origin request refused (Origin ${origin})`;
  const site = request.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return `cross-site request refused (Sec-Fetch-Site: ${site})`;
  if (path.startsWith('/api/') && bearerToken(request) === undefined && readCookie(request, API_COOKIE) !== undefined && request.headers[CONSOLE_HEADER] !== '1') {
    return `console requests must carry the ${CONSOLE_HEADER} header`;
  }
  return undefined;
}

/** A local path to go back to after login; anything else (other hosts, "//x") becomes "/". */
export function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/(?![/\\])[^\s]*$/.test(next) ? next : '/';
}

function isHttps(request: FastifyRequest, config: Config): boolean {
  return request.protocol === 'https' || config.publicUrl.startsWith('https:');
}

function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return `${API_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

function formBody(request: FastifyRequest): URLSearchParams {
  const body = request.body as Buffer | undefined;
  return new URLSearchParams(body && body.length <= 16 * 1024 ? body.toString('utf8') : '');
}

/** Pages of the console need a session when a token is set; without one, HTML gets the login form. */
export function requireConsoleAuth(request: FastifyRequest, reply: FastifyReply, config: Config): boolean {
  if (isAuthorised(request, config)) return true;
  if (request.headers['x-firebreak-fragment']) {
    void reply.code(401).send(errorBody('login required'));
    return false;
  }
  void reply.redirect(`/login?next=${encodeURIComponent(request.url)}`, 303);
  return false;
}

export function registerSecurity(app: FastifyInstance, config: Config): void {
  app.addHook('onRequest', async (request, reply) => {
    const problem = csrfProblem(request, config);
    if (problem) return reply.code(403).send(errorBody(problem, [{ path: 'Origin', message: 'state-changing requests must come from the console itself or carry a Bearer token' }]));
    return undefined;
  });

  app.get('/login', async (request, reply) => {
    const next = safeNext((request.query as { next?: unknown }).next);
    if (!config.apiToken || isAuthorised(request, config)) return reply.redirect(next, 303);
    return sendPage(reply, 200, loginPage({ next }));
  });

  app.post('/login', async (request, reply) => {
    const form = formBody(request);
    const next = safeNext(form.get('next'));
    if (!config.apiToken) return reply.redirect(next, 303);
    const token = form.get('token') ?? '';
    if (!token || !secretsEqual(token, config.apiToken)) {
      request.log.warn({ ip: request.ip }, 'console login refused: wrong token');
      return sendPage(reply, 401, loginPage({ next, error: token ? 'That token is not right.' : 'Enter the API token.' }));
    }
    reply.header('set-cookie', sessionCookie(createSessionValue(config.apiToken), Math.floor(SESSION_TTL_MS / 1000), isHttps(request, config)));
    return reply.redirect(next, 303);
  });

  app.post('/logout', async (request, reply) => {
    reply.header('set-cookie', sessionCookie('', 0, isHttps(request, config)));
    return reply.redirect(config.apiToken ? '/login' : '/', 303);
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
