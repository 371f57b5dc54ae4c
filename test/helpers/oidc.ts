/**
 * A real OpenID provider for the tests: the `oidc-provider` package (the
 * certified Node.js implementation) in this process, over HTTP on loopback.
 * Its development login form accepts any password for the accounts below; the
 * client is first-party, so consent is granted without a screen. Claims other
 * than `sub` travel through the userinfo endpoint (the provider's default), as
 * with many real providers; `groups` is the groups claim.
 */
import { createServer, type Server } from 'node:http';
import { request } from 'undici';
import { freePort } from './server.js';

export interface TestAccount {
  preferred_username?: string;
  email?: string;
  email_verified?: boolean;
  groups?: string[] | string;
}

export interface TestProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  accounts: Record<string, TestAccount>;
  close(): Promise<void>;
}

export async function startOidcProvider(options: { redirectUris: string[]; accounts: Record<string, TestAccount> }): Promise<TestProvider> {
  const { default: Provider } = (await import('oidc-provider')) as { default: any };
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const clientId = 'firebreak-console';
  const clientSecret = `client-secret-${Math.random().toString(36).slice(2)}`;
  const accounts = options.accounts;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: options.redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    claims: { openid: ['sub'], profile: ['preferred_username', 'groups'], email: ['email', 'email_verified'] },
    scopes: ['openid', 'profile', 'email'],
    pkce: { required: () => true },
    cookies: { keys: ['firebreak-test-cookie-key'] },
    features: { devInteractions: { enabled: true } },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    async findAccount(_ctx: unknown, id: string) {
      const account = accounts[id];
      if (!account) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...account }) };
    },
    // A first-party client: grant the requested OIDC scopes without a consent screen.
    async loadExistingGrant(ctx: any) {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope('openid profile email');
      await grant.save();
      return grant;
    },
  });
  const server: Server = createServer(provider.callback());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    issuer,
    clientId,
    clientSecret,
    accounts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A tiny cookie jar per origin (host:port), enough to walk a sign-on with plain HTTP requests. */
export class CookieJar {
  private readonly jars = new Map<string, Map<string, string>>();

  header(url: string): string | undefined {
    const jar = this.jars.get(new URL(url).host);
    if (!jar || jar.size === 0) return undefined;
    return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  store(url: string, setCookie: string | string[] | undefined): void {
    if (!setCookie) return;
    const host = new URL(url).host;
    const jar = this.jars.get(host) ?? new Map<string, string>();
    this.jars.set(host, jar);
    for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a));
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
    }
  }

  get(url: string, name: string): string | undefined {
    return this.jars.get(new URL(url).host)?.get(name);
  }
}

export interface Hop {
  url: string;
  status: number;
  location?: string;
  body: string;
}

/** One request with the jar's cookies; stores what the answer sets. */
export async function fetchWithJar(jar: CookieJar, url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Hop> {
  const cookie = jar.header(url);
  const res = await request(url, {
    method: (init.method ?? (init.form ? 'POST' : 'GET')) as 'GET',
    headers: { ...(cookie && { cookie }), ...(init.form && { 'content-type': 'application/x-www-form-urlencoded' }), ...init.headers },
    body: init.form ? new URLSearchParams(init.form).toString() : undefined,
  });
  jar.store(url, res.headers['set-cookie'] as string | string[] | undefined);
  const body = await res.body.text();
  const location = res.headers.location as string | undefined;
  return { url, status: res.statusCode, body, ...(location && { location: new URL(location, url).href }) };
}

/** Follow redirects (with cookies) until an answer that is not a redirect, or `stopAt` matches the next URL. */
export async function follow(jar: CookieJar, start: Hop, stopAt?: (url: string) => boolean): Promise<Hop[]> {
  const hops = [start];
  let hop = start;
  for (let i = 0; i < 20 && hop.location && hop.status >= 300 && hop.status < 400; i++) {
    if (stopAt?.(hop.location)) break;
    hop = await fetchWithJar(jar, hop.location);
    hops.push(hop);
  }
  return hops;
}

/**
 * Sign in to Firebreak's console through the provider with plain HTTP: start
 * at /auth/oidc/login, submit the provider's login form as `login`, and stop
 * at Firebreak's callback URL (returned, not followed) so tests can inspect
 * or tamper with it.
 */
export async function signOnUntilCallback(jar: CookieJar, firebreakUrl: string, login: string): Promise<{ callback: string; authorize: string }> {
  const begin = await fetchWithJar(jar, `${firebreakUrl}/auth/oidc/login?next=%2F`);
  if (begin.status !== 303 || !begin.location) throw new Error(`expected a redirect to the provider, got ${begin.status}: ${begin.body.slice(0, 300)}`);
  const authorize = begin.location;
  const toLogin = await follow(jar, await fetchWithJar(jar, authorize));
  const form = toLogin[toLogin.length - 1]!;
  const action = /<form[^>]*action="([^"]+)"/.exec(form.body)?.[1];
  if (!action) throw new Error(`no login form at the provider: ${form.status} ${form.body.slice(0, 300)}`);
  const submitted = await fetchWithJar(jar, new URL(action.replace(/&amp;/g, '&'), form.url).href, { form: { prompt: 'login', login, password: 'any' } });
  const hops = await follow(jar, submitted, (url) => url.startsWith(`${firebreakUrl}/auth/oidc/callback`));
  const last = hops[hops.length - 1]!;
  if (!last.location?.startsWith(`${firebreakUrl}/auth/oidc/callback`)) throw new Error(`the provider did not redirect back: ${last.status} ${last.location ?? ''} ${last.body.slice(0, 300)}`);
  return { callback: last.location, authorize };
}
