/**
 * Every route declares who may call it where it is registered
 * (`config: { access: ... }`), and one onRequest hook enforces it on the route
 * the router matched, after URL decoding: no spelling of a path (`/%61pi/...`,
 * `//api`, a trailing slash) reaches a handler unchecked, because the check
 * never looks at the raw URL. A route that declares nothing is refused.
 *
 * Order per request: Host allow-list (421), the route's rule, who is asking
 * (401), then CSRF for cookie sessions (403). Handlers of acts then ask
 * `firebreak/authorize` with the identity found here.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type {} from '@fastify/cookie';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isLocalMode, isLoopbackHost, type Config } from '../config/index.js';
import { ValidationError } from '../errors.js';
import type { Pool } from '../store/index.js';
import { ANONYMOUS, identity, parseName, serviceIdentity, type Identity } from './identity.js';
import { readSession, SESSION_COOKIE, sessionValidity } from './sessions.js';
import { bearerRetryAfter, recordBearerFailure } from './throttle.js';
import { looksLikePersonalToken, staleTokenReason, verifyToken } from './tokens.js';

/**
 * Who may call a route:
 * - `public`: anyone (health, assets, the login pages; Slack verifies its own signatures);
 * - `webhook`: alert senders (FIREBREAK_WEBHOOK_TOKEN when set; sources add signatures);
 * - `metrics`: Prometheus (FIREBREAK_METRICS_TOKEN when set);
 * - `read`: any identity (in local mode, anyone on loopback);
 * - `act`: any identity; the handler asks `firebreak/authorize`; cookie sessions must pass CSRF checks;
 * - `page`: console pages: a session (or a Bearer token); without one, the login page;
 * - `login`: public, but CSRF-checked (the login and logout forms).
 */
export type AccessRule = 'public' | 'webhook' | 'metrics' | 'read' | 'act' | 'page' | 'login';

const RULES: ReadonlySet<string> = new Set<AccessRule>(['public', 'webhook', 'metrics', 'read', 'act', 'page', 'login']);

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call this route (see src/access/guard.ts). Required: a route without it is refused. */
    access?: AccessRule;
  }
  interface FastifyRequest {
    /** Who is asking: set by the access guard on every route whose rule needs an identity. */
    identity: Identity | null;
    /** How the identity was established. */
    authVia: 'bearer' | 'session' | 'local' | null;
  }
}

/** The header the CLI's `--as <name>` sends: a name claimed in local mode only. */
export const AS_HEADER = 'x-firebreak-as';
/** Console writes carry it; a cross-site page cannot add it without a CORS preflight this server never grants. */
export const CONSOLE_HEADER = 'x-firebreak-console';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Constant-time comparison of a presented secret with the expected one. */
export function secretsEqual(presented: string, expected: string): boolean {
  // Hash both so lengths match and timing says nothing about the expected length.
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && presented.length === expected.length;
}

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match?.[1]?.trim();
}

function problem(reply: FastifyReply, status: number, error: string, details: Array<{ path: string; message: string }> = []): FastifyReply {
  return reply.code(status).send({ error, details });
}

function singleHeader(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

// ---- Host allow-list --------------------------------------------------------------

interface HostPort {
  hostname: string;
  port: number | undefined;
}

/** `name`, `name:port`, `[v6]`, `[v6]:port`; anything else is not a Host we answer. */
function parseHost(value: string): HostPort | undefined {
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/i.exec(value.trim());
  if (!m) return undefined;
  return { hostname: m[1]!.toLowerCase(), port: m[2] ? Number(m[2]) : undefined };
}

/** An IP literal (brackets off for v6), or undefined for a name. */
function ipOf(hostname: string): { ip: string; family: 'ipv4' | 'ipv6' } | undefined {
  const bare = hostname.replace(/^\[|\]$/g, '');
  const v = isIP(bare);
  return v === 4 ? { ip: bare, family: 'ipv4' } : v === 6 ? { ip: bare, family: 'ipv6' } : undefined;
}

/** FIREBREAK_ALLOWED_HOSTS entries: `name`, `name:port`, or an address range `10.0.0.0/8` (pod IPs for probes and scrapes). */
function allowedByEntry(entry: string, host: HostPort): boolean {
  const cidr = /^([0-9a-f.:]+)\/(\d{1,3})$/i.exec(entry);
  if (cidr) {
    const ip = ipOf(host.hostname);
    const family = isIP(cidr[1]!) === 6 ? 'ipv6' : 'ipv4';
    if (!ip || ip.family !== family) return false;
    const list = new BlockList();
    list.addSubnet(cidr[1]!, Number(cidr[2]), family);
    return list.check(ip.ip, family);
  }
  const allowed = parseHost(entry);
  return allowed !== undefined && allowed.hostname === host.hostname && (allowed.port === undefined || allowed.port === (host.port ?? 80));
}

// ---- the authority a request names ----------------------------------------------------

/** `http://host[:port]/path?query` (absolute-form, RFC 9112 3.2.2): what proxies send, and what a crafted request can send to us. */
const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * The request target in origin-form (`/path?query`): an absolute-form target
 * loses its scheme and authority, so every route, redirect and `next` link
 * sees a path, never `http://evil/...` (used as fastify's rewriteUrl).
 */
export function originForm(url: string): string {
  if (!ABSOLUTE_FORM.test(url)) return url;
  try {
    const parsed = new URL(url);
    return `${parsed.pathname}${parsed.search}`;
  } catch {
    return '/';
  }
}

/**
 * The one host a request names, or why it names none clearly: exactly one
 * Host header (RFC 9112: more than one is a 400; Node would quietly keep the
 * first, a proxy in front might keep the last), and an absolute-form target
 * must name the same authority (RFC 9112 says it wins over Host, so the two
 * must not disagree about where the request is going).
 */
function requestAuthority(request: FastifyRequest): { host: string | undefined } | { problem: string } {
  const raw = request.raw.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'host') hosts++;
  if (hosts > 1) return { problem: `the request carries ${hosts} Host headers; send exactly one` };
  const host = request.headers.host;
  const target = request.originalUrl;
  if (ABSOLUTE_FORM.test(target)) {
    let authority: string;
    try {
      authority = new URL(target).host;
    } catch {
      return { problem: 'the request target is not a valid URL' };
    }
    if (host === undefined || authority.toLowerCase() !== host.trim().toLowerCase()) {
      return { problem: `the request target names host ${JSON.stringify(authority)} but the Host header says ${JSON.stringify(host ?? '')}` };
    }
  }
  return { host };
}

/**
 * The names this server answers to: the public URL's host, loopback names
 * (localhost, 127.0.0.0/8, [::1]) with the listening port, and
 * FIREBREAK_ALLOWED_HOSTS. Anything else is a request meant for another
 * site (DNS rebinding points a hostile name at a loopback address): 421.
 */
export function hostAllowed(hostHeader: string | undefined, config: Pick<Config, 'publicUrl' | 'port' | 'allowedHosts'>, listeningPort: number = config.port): boolean {
  const host = hostHeader ? parseHost(hostHeader) : undefined;
  if (!host) return false;
  const publicUrl = new URL(config.publicUrl);
  const publicDefault = publicUrl.protocol === 'https:' ? 443 : 80;
  if (host.hostname === publicUrl.hostname.toLowerCase() && (host.port ?? publicDefault) === (publicUrl.port ? Number(publicUrl.port) : publicDefault)) return true;
  if (isLoopbackHost(host.hostname) && (host.port ?? 80) === listeningPort) return true;
  return config.allowedHosts.some((entry) => allowedByEntry(entry, host));
}

// ---- CSRF -------------------------------------------------------------------------

/** The origins this server answers as: the Host it was reached on (already allow-listed), and FIREBREAK_PUBLIC_URL. */
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

/**
 * Why a state-changing request must be refused as a possible CSRF, or
 * undefined when it is fine. Applies to routes whose rule is `act` or `login`
 * (and `read`/`page` if one ever takes a POST), and to webhooks: alert
 * senders are servers, which send neither Origin nor Sec-Fetch-Site, while a
 * web page posting to a loopback server without a webhook token would start
 * runs. Scripts with a Bearer token send no cookie and are unaffected by the
 * console-header rule.
 */
export function csrfProblem(request: FastifyRequest, rule: AccessRule, config: Config): string | undefined {
  if (rule === 'public' || rule === 'metrics') return undefined;
  const site = request.headers['sec-fetch-site'];
  const crossSite = typeof site === 'string' && site !== 'same-origin' && site !== 'none';
  if (SAFE_METHODS.has(request.method)) {
    // A read of an act (GET /api/tokens asks firebreak/authorize and is recorded): another site's <img> must not
    // write decisions to the access chain in someone's name.
    return rule === 'act' && crossSite ? `cross-site request refused (Sec-Fetch-Site: ${site})` : undefined;
  }
  const origin = request.headers.origin;
  if (origin !== undefined && !isOwnOrigin(origin, request, config)) return `cross-origin request refused (Origin ${origin})`;
  if (crossSite) return `cross-site request refused (Sec-Fetch-Site: ${site})`;
  if ((rule === 'act' || rule === 'read' || rule === 'page') && request.authVia === 'session' && request.headers[CONSOLE_HEADER] !== '1') {
    return `console requests must carry the ${CONSOLE_HEADER} header`;
  }
  return undefined;
}

// ---- who is asking --------------------------------------------------------------------

export type Authentication =
  | { identity: Identity; via: 'bearer' | 'session' | 'local' }
  | { status: 400 | 401 | 429; error: string; path: string; hint: string; retryAfter?: number };

/**
 * Establish who sent a request: a Bearer token (FIREBREAK_API_TOKEN: the
 * service; a personal token), else a console session cookie, else, in local
 * mode only, the name the CLI claims with `--as` (X-Firebreak-As) or nobody
 * yet (`local:anonymous`, to be named by the request's body or refused by policy).
 */
export async function authenticate(request: FastifyRequest, config: Config, pool: Pool): Promise<Authentication> {
  const local = isLocalMode(config);
  const claimed = singleHeader(request, AS_HEADER);
  const bearer = bearerToken(request);
  let found: { identity: Identity; via: 'bearer' | 'session' } | undefined;
  if (bearer !== undefined) {
    // Guessing tokens over the API is throttled like console logins (src/access/throttle.ts): refused while
    // blocked even when right, so a guesser cannot tell when it hit.
    const wait = await bearerRetryAfter(pool, request.ip);
    if (wait > 0) {
      return { status: 429, error: `too many wrong tokens from this address; try again in ${Math.ceil(wait / 60)} min`, path: 'Authorization', hint: 'check FIREBREAK_TOKEN / the token you send', retryAfter: wait };
    }
    const who = config.apiToken && secretsEqual(bearer, config.apiToken) ? serviceIdentity() : looksLikePersonalToken(bearer) ? await verifyToken(pool, bearer) : undefined;
    if (!who) {
      const stale = await staleTokenReason(pool, bearer);
      if (stale) return { status: 401, error: `this personal token was ${stale}`, path: 'Authorization', hint: 'ask for a new token (firebreak token create)' };
      await recordBearerFailure(pool, request.ip);
      return { status: 401, error: 'missing or invalid API token', path: 'Authorization', hint: 'expected Authorization: Bearer <personal token (firebreak token create) or FIREBREAK_API_TOKEN>' };
    }
    found = { identity: who, via: 'bearer' };
  } else {
    const cookie = request.cookies?.[SESSION_COOKIE];
    const who = cookie ? await readSession(pool, cookie, sessionValidity(config)) : undefined;
    if (who) found = { identity: who, via: 'session' };
  }
  if (claimed !== undefined) {
    if (!local) return { status: 400, error: '--as (X-Firebreak-As) is only accepted in local mode; authenticate with FIREBREAK_TOKEN (a personal token) instead', path: AS_HEADER, hint: 'remove --as' };
    if (found) return { status: 400, error: `--as (X-Firebreak-As) cannot be combined with ${found.via === 'bearer' ? 'a token' : 'a console session'}: that already says who you are (${found.identity.id})`, path: AS_HEADER, hint: 'remove --as' };
    try {
      return { identity: identity('local', parseName(claimed, AS_HEADER)), via: 'local' };
    } catch (err) {
      return { status: 400, error: (err as ValidationError).message, path: AS_HEADER, hint: 'letters, digits and . _ @ + - (up to 64)' };
    }
  }
  if (found) return found;
  if (local) return { identity: identity('local', ANONYMOUS), via: 'local' };
  return { status: 401, error: 'authentication required', path: 'Authorization', hint: 'send Authorization: Bearer <token>, or log in to the console' };
}

// ---- the hook ----------------------------------------------------------------------------

export interface GuardOptions {
  config: Config;
  pool: Pool;
  /** Where console pages send a visitor without a session (the login page). */
  loginPath?: string;
}

function tokenMatches(request: FastifyRequest, expected: string | undefined): boolean {
  if (!expected) return true;
  const presented = bearerToken(request);
  return presented !== undefined && secretsEqual(presented, expected);
}

/**
 * Install the guard on the root instance, before any route: a global
 * onRequest hook, so every route (in any plugin) is covered.
 */
export function installGuard(app: FastifyInstance, options: GuardOptions): void {
  const { config, pool } = options;
  const loginPath = options.loginPath ?? '/login';
  app.decorateRequest('identity', null);
  app.decorateRequest('authVia', null);

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    // The port the connection really arrived on (PORT=0 picks one at listen time).
    const listening = request.socket?.localPort || config.port;
    const authority = requestAuthority(request);
    if ('problem' in authority) return problem(reply, 400, authority.problem, [{ path: 'Host', message: 'one Host header, agreeing with the request target' }]);
    if (!hostAllowed(authority.host, config, listening)) {
      return problem(reply, 421, `this server does not answer for host ${JSON.stringify(request.headers.host ?? '')}`, [
        { path: 'Host', message: `expected ${new URL(config.publicUrl).host} (FIREBREAK_PUBLIC_URL), a loopback name with port ${listening}, or one of FIREBREAK_ALLOWED_HOSTS` },
      ]);
    }
    // Unknown paths get the 404 handler, which reveals nothing.
    if (request.is404) return undefined;
    const rule = request.routeOptions.config.access;
    if (rule === undefined || !RULES.has(rule)) {
      request.log.error({ route: request.routeOptions.url, method: request.method }, 'route declares no access rule: refused');
      return problem(reply, 403, 'this route declares no access rule, so nobody may call it');
    }
    switch (rule) {
      case 'public':
      case 'login':
        break;
      case 'webhook':
      case 'metrics': {
        const [expected, name] = rule === 'webhook' ? [config.webhookToken, 'FIREBREAK_WEBHOOK_TOKEN'] : [config.metricsToken, 'FIREBREAK_METRICS_TOKEN'];
        if (!tokenMatches(request, expected)) {
          reply.header('www-authenticate', 'Bearer');
          return problem(reply, 401, `missing or invalid bearer token (${name})`, [{ path: 'Authorization', message: `expected Authorization: Bearer <${name}>` }]);
        }
        break;
      }
      case 'read':
      case 'act':
      case 'page': {
        const auth = await authenticate(request, config, pool);
        if ('status' in auth) {
          if (rule === 'page' && auth.status === 401 && request.headers['x-firebreak-fragment'] === undefined && SAFE_METHODS.has(request.method)) {
            return reply.redirect(`${loginPath}?next=${encodeURIComponent(request.url)}`, 303);
          }
          if (auth.status === 401) reply.header('www-authenticate', 'Bearer');
          if (auth.retryAfter) reply.header('retry-after', String(auth.retryAfter));
          return problem(reply, auth.status, auth.status === 401 && rule === 'page' ? 'login required' : auth.error, [{ path: auth.path, message: auth.hint }]);
        }
        request.identity = auth.identity;
        request.authVia = auth.via;
        break;
      }
    }
    const csrf = csrfProblem(request, rule, config);
    if (csrf) return problem(reply, 403, csrf, [{ path: 'Origin', message: 'state-changing requests must come from the console itself or carry a Bearer token' }]);
    return undefined;
  });
}

/** The identity the guard established; only for routes whose rule is read, act or page. */
export function requireIdentity(request: FastifyRequest): Identity {
  if (!request.identity) throw new Error(`route ${request.routeOptions.url} reads an identity its access rule does not establish`);
  return request.identity;
}
