/**
 * Console single sign-on against a real OpenID provider (oidc-provider, over
 * HTTP on loopback): the authorization code flow with PKCE, state and nonce,
 * the user from preferred_username (else email), groups from the groups
 * claim, a server-side session that logout ends, and the ways a sign-on must
 * fail (tampered or replayed state, another browser, a provider's refusal).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertBody, writePlaybooks } from '../timeline/fixture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { oneApprovalPlaybook } from '../helpers/playbooks.js';
import { CookieJar, fetchWithJar, signOnUntilCallback, startOidcProvider, type TestProvider } from '../helpers/oidc.js';
import { eventually, freePort, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { rm } from 'node:fs/promises';

const API_TOKEN = `svc-${Math.random().toString(36).slice(2)}`;
const SERVICE = { authorization: `Bearer ${API_TOKEN}` };

let db: TestDatabase;
let idp: TestProvider;
let server: ServerProcess;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  const port = await freePort();
  idp = await startOidcProvider({
    redirectUris: [`http://127.0.0.1:${port}/auth/oidc/callback`],
    accounts: {
      erin: { preferred_username: 'erin', email: 'erin@example.com', groups: ['sre', 'platform'] },
      frank: { email: 'frank@example.com', email_verified: true, groups: 'oncall' },
      // Typed someone else's address into a sign-up form; the provider never verified it.
      mallory: { email: 'erin@example.com', email_verified: false, groups: ['sre'] },
      'bad-name': { preferred_username: 'not a <name>' },
    },
  });
  dir = await writePlaybooks(oneApprovalPlaybook('oidc-flow', 'OidcFlow'));
  server = await startServer({
    PORT: String(port),
    DATABASE_URL: db.url,
    FIREBREAK_PLAYBOOKS: dir,
    FIREBREAK_API_TOKEN: API_TOKEN,
    FIREBREAK_OIDC_ISSUER: idp.issuer,
    FIREBREAK_OIDC_CLIENT_ID: idp.clientId,
    FIREBREAK_OIDC_CLIENT_SECRET: idp.clientSecret,
  });
});

afterAll(async () => {
  await server?.stop();
  await idp?.close();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('OpenID Connect sign-on', () => {
  it('sends the browser to the provider with PKCE (S256), state and nonce, and offers it on the login page', async () => {
    const login = await fetchWithJar(new CookieJar(), `${server.url}/login?next=%2F`);
    expect(login.body).toContain('href="/auth/oidc/login?next=%2F"');
    const jar = new CookieJar();
    const begin = await fetchWithJar(jar, `${server.url}/auth/oidc/login?next=%2Fruns`);
    expect(begin.status).toBe(303);
    const url = new URL(begin.location!);
    expect(url.origin).toBe(idp.issuer);
    expect(url.searchParams.get('client_id')).toBe(idp.clientId);
    expect(url.searchParams.get('redirect_uri')).toBe(`${server.url}/auth/oidc/callback`);
    expect(url.searchParams.get('response_type')).toBe('code');
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get('state')).toMatch(/.{20,}/);
    expect(url.searchParams.get('nonce')).toMatch(/.{20,}/);
    expect(url.searchParams.get('scope')).toBe('openid profile email');
    // The browser binding cookie goes back only to the callback path, and survives the cross-site redirect (Lax).
    expect(jar.get(server.url, 'firebreak_oidc')).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('signs erin in as oidc:erin with the groups of the groups claim, in a server-side session', async () => {
    const jar = new CookieJar();
    const { callback } = await signOnUntilCallback(jar, server.url, 'erin');
    const done = await fetchWithJar(jar, callback);
    expect(done.status).toBe(200);
    expect(done.body).toContain('<meta http-equiv="refresh" content="0;url=/">');
    const cookie = jar.get(server.url, 'firebreak_session')!;
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const who = await httpJson('GET', `${server.url}/api/whoami`, undefined, { cookie: `firebreak_session=${cookie}` });
    expect(who.body).toMatchObject({ id: 'oidc:erin', name: 'erin', method: 'oidc', verified: true, groups: ['platform', 'sre'] });
    // Only a hash of the session id is stored.
    const { rows } = await db.pool.query('select id_hash, actor, groups from sessions where actor = $1', ['oidc:erin']);
    expect(rows).toHaveLength(1);
    expect(rows[0].id_hash).not.toContain(cookie);
    expect(JSON.stringify(await db.pool.query('select * from sessions').then((r) => r.rows))).not.toContain(cookie);
    const page = await fetchWithJar(jar, `${server.url}/`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('<strong id="whoami">oidc:erin</strong>');
  });

  it('acts as the signed-in person: erin (sre from the claim) approves, recorded as oidc:erin', async () => {
    const jar = new CookieJar();
    await fetchWithJar(jar, (await signOnUntilCallback(jar, server.url, 'erin')).callback);
    const fired = await httpJson('POST', `${server.url}/hooks/generic`, alertBody({ alertname: 'OidcFlow', service: 'api' }));
    const runId = fired.body.runs[0] as string;
    const run = await eventually(async () => {
      const r = (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, SERVICE)).body;
      return r.status === 'waiting' ? r : undefined;
    });
    const cookie = `firebreak_session=${jar.get(server.url, 'firebreak_session')}`;
    const headers = { cookie, 'x-firebreak-console': '1', origin: server.url };
    // The body cannot name someone else.
    expect((await httpJson('POST', `${server.url}/api/approvals/${run.approvals[0].id}`, { decision: 'approve', user: 'alice' }, headers)).status).toBe(400);
    const answer = await httpJson('POST', `${server.url}/api/approvals/${run.approvals[0].id}`, { decision: 'approve', comment: 'checked the graphs' }, headers);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ outcome: 'approved', actor: 'oidc:erin' });
    const done = await eventually(async () => {
      const r = (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, SERVICE)).body;
      return r.status === 'succeeded' ? r : undefined;
    });
    expect(done.approvals[0].decidedBy).toBe('oidc:erin');
    const { rows } = await db.pool.query("select kind, actor, data from timeline_events where run_id = $1 and kind in ('access.allowed', 'approval.granted') order by seq", [runId]);
    expect(rows.map((r) => [r.kind, r.actor])).toEqual([
      ['access.allowed', 'oidc:erin'],
      ['approval.granted', 'oidc:erin'],
    ]);
    expect(rows[0].data).toMatchObject({ entrypoint: 'firebreak/authorize', action: 'approval.answer', user: { method: 'oidc', verified: true, groups: ['platform', 'sre'] } });
    expect(rows[1].data.comment).toBe('checked the graphs');
  });

  it('takes the email when there is no preferred_username, and a groups claim given as a string', async () => {
    const jar = new CookieJar();
    await fetchWithJar(jar, (await signOnUntilCallback(jar, server.url, 'frank')).callback);
    const who = await httpJson('GET', `${server.url}/api/whoami`, undefined, { cookie: `firebreak_session=${jar.get(server.url, 'firebreak_session')}` });
    expect(who.body).toMatchObject({ id: 'oidc:frank@example.com', groups: ['oncall'] });
  });

  it('refuses an email address the provider does not say it verified (no identity from a typed-in address)', async () => {
    const jar = new CookieJar();
    const done = await fetchWithJar(jar, (await signOnUntilCallback(jar, server.url, 'mallory')).callback);
    expect(done.status).toBe(401);
    expect(done.body).toContain('does not say the email address erin@example.com is verified');
    expect(jar.get(server.url, 'firebreak_session')).toBeUndefined();
    const { rows } = await db.pool.query("select count(*)::int as n from sessions where actor like 'oidc:erin@%'");
    expect(rows[0].n).toBe(0);
  });

  it('refuses a user name it cannot record', async () => {
    const jar = new CookieJar();
    const done = await fetchWithJar(jar, (await signOnUntilCallback(jar, server.url, 'bad-name')).callback);
    expect(done.status).toBe(401);
    expect(done.body).toContain('is not usable here');
    expect(jar.get(server.url, 'firebreak_session')).toBeUndefined();
  });

  it('logout ends the session on the server: the old cookie is dead even if kept', async () => {
    const jar = new CookieJar();
    await fetchWithJar(jar, (await signOnUntilCallback(jar, server.url, 'erin')).callback);
    const cookie = `firebreak_session=${jar.get(server.url, 'firebreak_session')}`;
    expect((await httpJson('GET', `${server.url}/api/runs`, undefined, { cookie })).status).toBe(200);
    const out = await fetchWithJar(jar, `${server.url}/logout`, { method: 'POST', headers: { origin: server.url } });
    expect(out.status).toBe(303);
    expect(out.location).toBe(`${server.url}/login`);
    expect(jar.get(server.url, 'firebreak_session')).toBeUndefined();
    // A copy of the cookie taken before logout (another tab, a thief) no longer works.
    expect((await httpJson('GET', `${server.url}/api/runs`, undefined, { cookie })).status).toBe(401);
    const { rows } = await db.pool.query("select kind, actor from timeline_events where chain_id = 'access' and kind like 'session.%' order by seq desc limit 1");
    expect(rows[0]).toEqual({ kind: 'session.ended', actor: 'oidc:erin' });
  });

  describe('a sign-on that must fail', () => {
    it('a tampered state', async () => {
      const jar = new CookieJar();
      const { callback } = await signOnUntilCallback(jar, server.url, 'erin');
      const url = new URL(callback);
      url.searchParams.set('state', `${url.searchParams.get('state')}x`);
      const res = await fetchWithJar(jar, url.href);
      expect(res.status).toBe(401);
      expect(res.body).toContain('unknown or was already used');
      expect(jar.get(server.url, 'firebreak_session')).toBeUndefined();
    });

    it('a replayed callback (the code and state are used once)', async () => {
      const jar = new CookieJar();
      const { callback } = await signOnUntilCallback(jar, server.url, 'erin');
      const browser = jar.get(server.url, 'firebreak_oidc');
      expect((await fetchWithJar(jar, callback)).status).toBe(200);
      const again = new CookieJar();
      again.store(server.url, `firebreak_oidc=${browser}`);
      const res = await fetchWithJar(again, callback);
      expect(res.status).toBe(401);
      expect(again.get(server.url, 'firebreak_session')).toBeUndefined();
    });

    it('a callback opened in another browser (login CSRF: someone else’s code)', async () => {
      const attacker = new CookieJar();
      const { callback } = await signOnUntilCallback(attacker, server.url, 'erin');
      const victim = new CookieJar();
      const res = await fetchWithJar(victim, callback);
      expect(res.status).toBe(401);
      expect(res.body).toContain('another browser');
      expect(victim.get(server.url, 'firebreak_session')).toBeUndefined();
    });

    it('a wrong PKCE verifier or nonce is caught by the code exchange', async () => {
      const jar = new CookieJar();
      const { callback } = await signOnUntilCallback(jar, server.url, 'erin');
      const state = new URL(callback).searchParams.get('state')!;
      const { createHash } = await import('node:crypto');
      const hash = createHash('sha256').update(state).digest('hex');
      await db.pool.query("update oidc_logins set code_verifier = repeat('a', 64) where state_hash = $1", [hash]);
      const res = await fetchWithJar(jar, callback);
      expect(res.status).toBe(401);
      expect(res.body).toMatch(/sign-on failed/);
    });

    it('the provider’s refusal is shown, not a 500', async () => {
      const jar = new CookieJar();
      const begin = await fetchWithJar(jar, `${server.url}/auth/oidc/login`);
      const state = new URL(begin.location!).searchParams.get('state')!;
      const res = await fetchWithJar(jar, `${server.url}/auth/oidc/callback?error=access_denied&error_description=nope&state=${encodeURIComponent(state)}`);
      expect(res.status).toBe(401);
      expect(res.body).toContain('access_denied');
    });
  });

  it('refuses an http issuer that is not on loopback at start-up', async () => {
    const res = await runCli(['serve'], { FIREBREAK_OIDC_ISSUER: 'http://idp.example.com', FIREBREAK_OIDC_CLIENT_ID: 'x', DATABASE_URL: db.url });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('FIREBREAK_OIDC_ISSUER: must be an https URL');
  });
});
