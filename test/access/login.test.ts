/**
 * Console logins with a token, and local mode: server-side sessions that
 * logout and token revocation end, login throttling in Postgres (per client
 * and per user, shared by replicas, with Retry-After), and local mode where
 * names are claims recorded as unverified and `--as` is accepted.
 */
import { rm } from 'node:fs/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertBody, writePlaybooks } from '../timeline/fixture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { oneApprovalPlaybook } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';

const API_TOKEN = `svc-${Math.random().toString(36).slice(2)}`;
const SERVICE = { authorization: `Bearer ${API_TOKEN}` };

let db: TestDatabase;
let localDb: TestDatabase;
let server: ServerProcess;
let replica: ServerProcess;
let local: ServerProcess;
let dir: string;


beforeAll(async () => {
  [db, localDb] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  dir = await writePlaybooks(oneApprovalPlaybook('login-flow', 'LoginFlow'));
  [server, replica, local] = await Promise.all([
    startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_API_TOKEN: API_TOKEN }),
    startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_API_TOKEN: API_TOKEN, FIREBREAK_WORKERS: '0' }),
    // No authentication configured, loopback: local mode.
    startServer({ DATABASE_URL: localDb.url, FIREBREAK_PLAYBOOKS: dir }),
  ]);
});

afterAll(async () => {
  await Promise.all([server?.stop(), replica?.stop(), local?.stop()]);
  await Promise.all([db?.drop(), localDb?.drop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function login(on: ServerProcess, form: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await request(`${on.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form).toString() });
  const text = await res.body.text();
  const setCookie = res.headers['set-cookie'] as string | undefined;
  return { status: res.statusCode, text, headers: res.headers, setCookie, cookie: setCookie?.split(';')[0] };
}

async function createToken(user: string, database = db): Promise<string> {
  const res = await runCli(['token', 'create', user], { DATABASE_URL: database.url });
  expect(res.code, res.stderr).toBe(0);
  return res.stdout.trim();
}

async function waitingRun(on: ServerProcess, auth: Record<string, string>) {
  const fired = await httpJson('POST', `${on.url}/hooks/generic`, alertBody({ alertname: 'LoginFlow', service: `s-${Math.random().toString(36).slice(2)}` }));
  const runId = fired.body.runs[0] as string;
  const run = await eventually(async () => {
    const r = (await httpJson('GET', `${on.url}/api/runs/${runId}`, undefined, auth)).body;
    return r.status === 'waiting' ? r : undefined;
  });
  return { runId, approvalId: run.approvals[0].id as string };
}

describe('console sessions', () => {
  it('a personal token logs in to an HttpOnly, SameSite=Strict session whose id is random and stored hashed', async () => {
    const alice = await createToken('alice');
    const res = await login(server, { token: alice, next: '/?status=waiting' });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/?status=waiting');
    expect(res.setCookie).toMatch(/^firebreak_session=[A-Za-z0-9_-]{43}; Max-Age=43200; Path=\/; HttpOnly; SameSite=Strict$/);
    expect(res.setCookie).not.toContain(alice.slice(-43));
    const who = await httpJson('GET', `${server.url}/api/whoami`, undefined, { cookie: res.cookie! });
    expect(who.body).toMatchObject({ id: 'token:alice', method: 'token' });
    // Any replica reads the same session.
    expect((await httpJson('GET', `${replica.url}/api/whoami`, undefined, { cookie: res.cookie! })).body.id).toBe('token:alice');
    const page = await request(`${server.url}/`, { headers: { cookie: res.cookie! } });
    expect(await page.body.text()).toContain('<strong id="whoami">token:alice</strong>');
  });

  it('logout ends the session on the server (a copied cookie stops working)', async () => {
    const res = await login(server, { token: await createToken('bob') });
    const cookie = res.cookie!;
    expect((await httpJson('GET', `${server.url}/api/runs`, undefined, { cookie })).status).toBe(200);
    const out = await request(`${server.url}/logout`, { method: 'POST', headers: { cookie, origin: server.url } });
    await out.body.text();
    expect(out.statusCode).toBe(303);
    expect(String(out.headers['set-cookie'])).toMatch(/^firebreak_session=; Max-Age=0;/);
    expect((await httpJson('GET', `${server.url}/api/runs`, undefined, { cookie })).status).toBe(401);
    expect((await httpJson('GET', `${replica.url}/api/runs`, undefined, { cookie })).status).toBe(401);
    const page = await request(`${server.url}/`, { headers: { cookie } });
    await page.body.text();
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe('/login?next=%2F');
  });

  it('revoking a token ends every console session opened with it', async () => {
    const carol = await createToken('carol');
    const a = await login(server, { token: carol });
    const b = await login(replica, { token: carol });
    for (const cookie of [a.cookie!, b.cookie!]) expect((await httpJson('GET', `${server.url}/api/runs`, undefined, { cookie })).status).toBe(200);
    const revoked = await runCli(['token', 'revoke', carol.slice(4, 20)], { DATABASE_URL: db.url });
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain('2 console session(s) ended');
    for (const cookie of [a.cookie!, b.cookie!]) expect((await httpJson('GET', `${server.url}/api/runs`, undefined, { cookie })).status).toBe(401);
    expect((await login(server, { token: carol })).status).toBe(401);
  });

  it('the service token logs in as `service`: it reads, and cannot answer approvals', async () => {
    const res = await login(server, { token: API_TOKEN });
    const cookie = res.cookie!;
    expect((await httpJson('GET', `${server.url}/api/whoami`, undefined, { cookie })).body.id).toBe('service');
    const { approvalId } = await waitingRun(server, SERVICE);
    const answer = await httpJson('POST', `${server.url}/api/approvals/${approvalId}`, { decision: 'approve' }, { cookie, 'x-firebreak-console': '1', origin: server.url });
    expect(answer.status).toBe(403);
    expect(answer.body.error).toMatch(/service token \(FIREBREAK_API_TOKEN\) cannot answer approvals/);
  });

  it('records logins and logouts on the access chain', async () => {
    const { rows } = await db.pool.query("select kind, actor, data from timeline_events where chain_id = 'access' and kind like 'session.%' order by seq");
    expect(rows.map((r) => `${r.kind} ${r.actor}`)).toEqual(expect.arrayContaining(['session.started token:alice', 'session.started token:bob', 'session.ended token:bob', 'session.started service']));
  });
});

describe('login throttling (in Postgres: every replica counts the same failures)', () => {
  it('answers 429 with Retry-After after repeated failures from one client, even to the right token, on any replica', async () => {
    await db.pool.query('delete from login_failures');
    const good = await createToken('dave');
    let first429 = 0;
    for (let i = 1; i <= 12; i++) {
      const res = await login(i % 2 ? server : replica, { token: `wrong-${i}` });
      if (res.status === 429) {
        first429 = i;
        break;
      }
      expect(res.status).toBe(401);
    }
    expect(first429).toBe(11);
    for (const on of [server, replica]) {
      const blocked = await login(on, { token: good });
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(blocked.headers['retry-after'])).toBeLessThanOrEqual(15 * 60);
      expect(blocked.text).toContain('Too many failed logins');
      expect(blocked.setCookie).toBeUndefined();
    }
    // The window lives in the database (database clock): end it, and the right token works again.
    await db.pool.query("update login_failures set window_started_at = now() - interval '16 minutes'");
    expect((await login(server, { token: good })).status).toBe(303);
  });

  it('throttles guesses at one person’s token per user, whatever the client', async () => {
    await db.pool.query('delete from login_failures');
    const erin = await createToken('erin');
    const wrong = `${erin.slice(0, 21)}${'A'.repeat(43)}`;
    for (let i = 0; i < 5; i++) expect((await login(server, { token: wrong })).status).toBe(401);
    // Other clients (counted separately) cannot go on guessing erin's token...
    await db.pool.query("delete from login_failures where scope = 'client'");
    expect((await login(replica, { token: wrong })).status).toBe(429);
    expect((await login(server, { token: erin })).status).toBe(429);
    // ...but may still log in as someone else.
    expect((await login(server, { token: await createToken('frank') })).status).toBe(303);
    const { rows } = await db.pool.query("select scope, key, failures from login_failures where scope = 'user'");
    expect(rows).toEqual([{ scope: 'user', key: 'erin', failures: 5 }]);
  });
});

describe('local mode (no authentication configured, loopback only)', () => {
  it('API reads need nothing; names are claims, recorded as unverified local:<name>', async () => {
    expect((await httpJson('GET', `${local.url}/api/runs`)).status).toBe(200);
    expect((await httpJson('GET', `${local.url}/api/whoami`)).body).toMatchObject({ id: 'local:anonymous', verified: false, mode: 'local' });
    const { runId, approvalId } = await waitingRun(local, {});
    // The CLI's --as: alice is SRE by name (policies/data.json), and local mode lets unverified names approve.
    const res = await runCli(['approve', approvalId, '--as', 'alice'], { FIREBREAK_URL: local.url });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('as local:alice');
    const { rows } = await localDb.pool.query("select kind, actor, data from timeline_events where chain_id = $1 and kind in ('access.allowed', 'approval.granted') order by seq", [runId]);
    expect(rows.map((r) => [r.kind, r.actor])).toEqual([
      ['access.allowed', 'local:alice'],
      ['approval.granted', 'local:alice'],
    ]);
    expect(rows[0].data.user).toMatchObject({ method: 'local', verified: false });
    expect(rows[1].data.verified).toBe(false);
  });

  it('the console asks for a name and keeps it in a server-side session, not in the browser', async () => {
    const page = await request(`${local.url}/`);
    const html = await page.body.text();
    expect(page.statusCode).toBe(200);
    expect(html).toContain('data-ask-name="1"');
    expect(html).toContain('<strong id="whoami">nobody yet</strong>');
    const js = await (await request(`${local.url}/console/app.js`)).body.text();
    expect(js).not.toContain('localStorage');
    const named = await login(local, { name: 'bob' }, { 'x-firebreak-console': '1', origin: local.url });
    expect(named.status).toBe(200);
    expect(JSON.parse(named.text)).toMatchObject({ id: 'local:bob', verified: false });
    const cookie = named.cookie!;
    const after = await (await request(`${local.url}/`, { headers: { cookie } })).body.text();
    expect(after).toContain('<strong id="whoami">local:bob</strong>');
    expect(after).not.toContain('data-ask-name');
    const { approvalId } = await waitingRun(local, {});
    // The session's name is the actor; a different name in the body is refused.
    expect((await httpJson('POST', `${local.url}/api/approvals/${approvalId}`, { decision: 'approve', user: 'alice' }, { cookie, 'x-firebreak-console': '1' })).status).toBe(400);
    const ok = await httpJson('POST', `${local.url}/api/approvals/${approvalId}`, { decision: 'approve' }, { cookie, 'x-firebreak-console': '1' });
    expect(ok.status).toBe(200);
    expect(ok.body.actor).toBe('local:bob');
    // --as with a session, or a bad name, is a 400.
    expect((await httpJson('GET', `${local.url}/api/whoami`, undefined, { cookie, 'x-firebreak-as': 'alice' })).status).toBe(400);
    expect((await httpJson('GET', `${local.url}/api/whoami`, undefined, { 'x-firebreak-as': 'not a name' })).status).toBe(400);
  });

  it('a name without a credential is not accepted outside local mode', async () => {
    const res = await login(server, { name: 'alice' });
    expect(res.status).toBe(400);
    expect(res.setCookie).toBeUndefined();
  });
});
