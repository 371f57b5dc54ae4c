/**
 * An attack pass over identity and access, each case one that got through
 * before its fix: request targets and Host headers a browser never sends but
 * a crafted request can, a `next` that broke the login redirect, live
 * updates that outlived a logout or a revoked token, token guessing over the
 * API and around the login counter, a local-mode session that outlived local
 * mode, and one person approving their own run under a name in another case.
 */
import { connect } from 'node:net';
import { rm } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_CLIENT_LIMIT, clientKey } from '../../src/access/index.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { alertBody, writePlaybooks } from '../timeline/fixture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { oneApprovalPlaybook } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';

const API_TOKEN = `svc-${Math.random().toString(36).slice(2)}`;
const SERVICE = { authorization: `Bearer ${API_TOKEN}` };

let db: TestDatabase;
let server: ServerProcess;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await writePlaybooks(oneApprovalPlaybook('attack', 'Attack'));
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_API_TOKEN: API_TOKEN });
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function createToken(user: string, ...args: string[]): Promise<string> {
  const res = await runCli(['token', 'create', user, ...args], { DATABASE_URL: db.url });
  expect(res.code, res.stderr).toBe(0);
  return res.stdout.trim();
}

/** Bytes on a socket, exactly as written: request lines and headers no HTTP client would send. */
function rawHttp(text: string): Promise<{ status: number; headers: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.port, '127.0.0.1', () => socket.end(text.replace(/\n/g, '\r\n')));
    let out = '';
    socket.on('data', (d) => (out += d));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', ...rest] = out.split('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), headers: head, body: rest.join('\r\n\r\n') });
    });
  });
}

async function consoleLogin(token: string, form: Record<string, string> = {}): Promise<{ status: number; location: string | undefined; cookie: string | undefined }> {
  const res = await request(`${server.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token, ...form }).toString() });
  await res.body.text();
  const setCookie = res.headers['set-cookie'] as string | undefined;
  return { status: res.statusCode, location: res.headers.location as string | undefined, cookie: setCookie?.split(';')[0] };
}

describe('request targets and Host headers', () => {
  it('an absolute-form target cannot turn the /runs redirect into a link to another site', async () => {
    const host = `127.0.0.1:${server.port}`;
    // Before: "Location: ///evil.example/runs", which a browser follows to evil.example.
    const other = await rawHttp(`GET http://evil.example/runs HTTP/1.1\nHost: ${host}\nConnection: close\n\n`);
    expect(other.status).toBe(400);
    expect(other.body).toContain('the request target names host');
    expect(other.headers).not.toMatch(/location:/i);
    // The same authority as Host is a legal absolute-form request: it is served as its path.
    const same = await rawHttp(`GET http://${host}/runs?status=failed HTTP/1.1\nHost: ${host}\nConnection: close\n\n`);
    expect(same.status).toBe(301);
    expect(same.headers).toMatch(/\r\nlocation: \/\?status=failed(\r\n|$)/i);
    // The target's authority is checked against the allow-list like a Host header.
    const rebound = await rawHttp(`GET http://evil.example/api/runs HTTP/1.1\nHost: evil.example\nAuthorization: Bearer ${API_TOKEN}\nConnection: close\n\n`);
    expect(rebound.status).toBe(421);
  });

  it('two Host headers are a 400, whichever comes first (Node kept the first, a proxy may route by the last)', async () => {
    for (const [first, second] of [
      [`127.0.0.1:${server.port}`, 'evil.example'],
      ['evil.example', `127.0.0.1:${server.port}`],
    ]) {
      const res = await rawHttp(`GET /api/runs HTTP/1.1\nHost: ${first}\nHost: ${second}\nAuthorization: Bearer ${API_TOKEN}\nConnection: close\n\n`);
      expect(res.status, `${first} then ${second}`).toBe(400);
      expect(res.body).toContain('2 Host headers');
    }
  });

  it('a `next` with a control or non-ASCII character goes to / instead of failing the login with a 500', async () => {
    const token = await createToken('nina');
    const { cookie } = await consoleLogin(token);
    for (const next of ['/%01', '/%7F', '/%E2%98%83', '/runs%09/x']) {
      const res = await request(`${server.url}/login?next=${next}`, { headers: { cookie: cookie! } });
      await res.body.text();
      expect(res.statusCode, next).toBe(303);
      expect(res.headers.location, next).toBe('/');
    }
    // The form post: before, the session was opened and then the answer was a 500.
    const posted = await consoleLogin(token, { next: '/☃' });
    expect(posted.status).toBe(303);
    expect(posted.location).toBe('/');
    expect(server.logs()).not.toContain('Invalid character in header content');
  });
});

describe('live updates end with the credential that opened them', () => {
  /** Open /api/events and collect what arrives until the server ends the stream. */
  async function openStream(headers: Record<string, string>) {
    const res = await request(`${server.url}/api/events`, { headers });
    expect(res.statusCode).toBe(200);
    let text = '';
    let ended = false;
    res.body.setEncoding('utf8');
    res.body.on('data', (chunk: string) => (text += chunk));
    const done = new Promise<void>((resolve) => res.body.on('end', () => ((ended = true), resolve())).on('error', () => ((ended = true), resolve())));
    return { text: () => text, ended: () => ended, done, close: () => res.body.destroy() };
  }

  async function fire() {
    const fired = await httpJson('POST', `${server.url}/hooks/generic`, alertBody({ alertname: 'Attack', service: `s-${Math.random().toString(36).slice(2)}` }));
    expect(fired.status).toBe(202);
  }

  /** Once the credential is gone, the next change ends the stream instead of reaching it. */
  async function endsAtTheNextChange(stream: Awaited<ReturnType<typeof openStream>>) {
    // The stream trusts its last check for a second; wait that out, then something happens.
    await sleep(1_100);
    const runsBefore = stream.text().split('event: run').length;
    await fire();
    await eventually(async () => stream.ended(), 10_000);
    expect(stream.text()).toContain('event: end');
    expect(stream.text().split('event: run').length).toBe(runsBefore);
  }

  it('a revoked token’s stream ends instead of carrying on for hours', async () => {
    const token = await createToken('olga');
    const stream = await openStream({ authorization: `Bearer ${token}` });
    try {
      await fire();
      await eventually(async () => stream.text().includes('event: run'));
      const revoked = await runCli(['token', 'revoke', token], { DATABASE_URL: db.url });
      expect(revoked.code, revoked.stderr).toBe(0);
      await endsAtTheNextChange(stream);
    } finally {
      stream.close();
    }
  });

  it('a logged-out session’s stream ends too', async () => {
    const { cookie } = await consoleLogin(await createToken('petra'));
    const stream = await openStream({ cookie: cookie! });
    try {
      const out = await request(`${server.url}/logout`, { method: 'POST', headers: { cookie: cookie!, origin: server.url } });
      await out.body.text();
      expect(out.statusCode).toBe(303);
      await endsAtTheNextChange(stream);
    } finally {
      stream.close();
    }
  });
});

describe('token guessing', () => {
  it('counts client addresses, and IPv6 clients by their /64', () => {
    expect(clientKey('203.0.113.7')).toBe('203.0.113.7');
    expect(clientKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(clientKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:2:ffff:ffff:ffff:fffe')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
  });

  it('a successful login with one’s own token does not reset the count of guesses at another', async () => {
    await db.pool.query('delete from login_failures');
    const own = await createToken('quinn');
    let blocked = false;
    // Before: nine guesses at the service token, one login as yourself, and the count started over, forever.
    for (let round = 0; round < 3 && !blocked; round++) {
      for (let i = 0; i < 9; i++) {
        const res = await consoleLogin(`guess-${round}-${i}`);
        if (res.status === 429) blocked = true;
      }
      const mine = await consoleLogin(own);
      if (mine.status === 429) blocked = true;
    }
    expect(blocked).toBe(true);
    expect((await consoleLogin(API_TOKEN)).status).toBe(429);
    await db.pool.query('delete from login_failures');
  });

  it(`a client that sent ${API_CLIENT_LIMIT} wrong Bearer tokens to the API is answered 429, even with the right one; other clients are not`, async () => {
    // The guesser comes from another loopback address, so this file's other requests (127.0.0.1) are another client.
    const guesser = new Agent({ localAddress: '127.0.0.9' });
    try {
      const api = async (token: string) => {
        const res = await request(`${server.url}/api/runs`, { headers: { authorization: `Bearer ${token}` }, dispatcher: guesser });
        await res.body.text();
        return res;
      };
      for (let i = 0; i < API_CLIENT_LIMIT; i++) expect((await api(`svc-guess-${i}`)).statusCode).toBe(401);
      const right = await api(API_TOKEN);
      expect(right.statusCode).toBe(429);
      expect(Number(right.headers['retry-after'])).toBeGreaterThan(0);
      // The same token from another address works.
      expect((await httpJson('GET', `${server.url}/api/runs`, undefined, SERVICE)).status).toBe(200);
      const { rows } = await db.pool.query("select key, failures from login_failures where key like 'api %'");
      expect(rows).toEqual([{ key: 'api 127.0.0.9', failures: API_CLIENT_LIMIT }]);
    } finally {
      await guesser.close();
      await db.pool.query('delete from login_failures');
    }
  });
});

describe('a forgotten script with a revoked token', () => {
  it('is told its token was revoked, and is not counted as guessing (its neighbours are not locked out)', async () => {
    const stale = await createToken('ulla');
    expect((await runCli(['token', 'revoke', stale], { DATABASE_URL: db.url })).code).toBe(0);
    const host = new Agent({ localAddress: '127.0.0.10' });
    try {
      const api = async (token: string) => {
        const res = await request(`${server.url}/api/runs`, { headers: { authorization: `Bearer ${token}` }, dispatcher: host });
        return { status: res.statusCode, body: (await res.body.json()) as { error?: string } };
      };
      for (let i = 0; i < API_CLIENT_LIMIT + 5; i++) {
        const res = await api(stale);
        expect(res.status).toBe(401);
        expect(res.body.error).toBe('this personal token was revoked');
      }
      expect((await api(API_TOKEN)).status).toBe(200);
      expect((await consoleLogin(stale)).status).toBe(401);
      const { rows } = await db.pool.query("select count(*)::int as n from login_failures where key like '%127.0.0.10'");
      expect(rows[0].n).toBe(0);
    } finally {
      await host.close();
    }
  });
});

describe('client addresses behind a proxy', () => {
  async function loginFrom(on: ServerProcess, forwardedFor: string, token: string) {
    const res = await request(`${on.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': forwardedFor }, body: new URLSearchParams({ token }).toString() });
    await res.body.text();
    return res.statusCode;
  }

  it('X-Forwarded-For is ignored unless FIREBREAK_TRUSTED_PROXIES lists the sender: a guesser cannot claim fresh addresses', async () => {
    await db.pool.query('delete from login_failures');
    for (let i = 0; i < 10; i++) expect(await loginFrom(server, `198.51.100.${i}`, `guess-${i}`)).toBe(401);
    expect(await loginFrom(server, '198.51.100.99', 'guess-99')).toBe(429);
    await db.pool.query('delete from login_failures');
  });

  it('behind a listed proxy each real client has its own count, so one guesser does not lock everyone out', async () => {
    await db.pool.query('delete from login_failures');
    const proxied = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_API_TOKEN: API_TOKEN, FIREBREAK_WORKERS: '0', FIREBREAK_TRUSTED_PROXIES: '127.0.0.0/8' });
    try {
      for (let i = 0; i < 10; i++) expect(await loginFrom(proxied, '203.0.113.5', `guess-${i}`)).toBe(401);
      expect(await loginFrom(proxied, '203.0.113.5', API_TOKEN)).toBe(429);
      // Before: every client behind the proxy shared its address, and this colleague was locked out too.
      expect(await loginFrom(proxied, '203.0.113.6', API_TOKEN)).toBe(303);
      const { rows } = await db.pool.query("select key from login_failures where scope = 'client'");
      expect(rows).toEqual([{ key: '203.0.113.5' }]);
    } finally {
      await proxied.stop();
      await db.pool.query('delete from login_failures');
    }
  });
});

describe('four-eyes and "approve once" count people, whatever the case of their name', () => {
  it('alice cannot approve her own run as token:Alice', async () => {
    const alice = await createToken('alice');
    const started = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'attack' }, { authorization: `Bearer ${alice}` });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const run = await eventually(async () => {
      const r = (await httpJson('GET', `${server.url}/api/runs/${started.body.id}`, undefined, SERVICE)).body;
      return r.status === 'waiting' ? r : undefined;
    });
    // The same human under another spelling (a second token, or a provider that capitalises names).
    const alsoAlice = await createToken('Alice', '--group', 'sre');
    const answer = await httpJson('POST', `${server.url}/api/approvals/${run.approvals[0].id}`, { decision: 'approve' }, { authorization: `Bearer ${alsoAlice}` });
    expect(answer.status, JSON.stringify(answer.body)).toBe(403);
    expect(answer.body.reason).toContain('four-eyes');
    expect(answer.body.reason).toContain('token:Alice (the same person) cannot approve');
    // Another SRE can.
    const bob = await createToken('bob');
    const ok = await httpJson('POST', `${server.url}/api/approvals/${run.approvals[0].id}`, { decision: 'approve' }, { authorization: `Bearer ${bob}` });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
  });
});

describe('names in a body, and a browser shared by two people', () => {
  it('an `as` field is held to the same rule as `user`: it cannot name someone else', async () => {
    const carol = await createToken('carol');
    const auth = { authorization: `Bearer ${carol}` };
    const fired = await httpJson('POST', `${server.url}/hooks/generic`, alertBody({ alertname: 'Attack', service: 'as-field' }));
    const run = await eventually(async () => {
      const r = (await httpJson('GET', `${server.url}/api/runs/${fired.body.runs[0]}`, undefined, SERVICE)).body;
      return r.status === 'waiting' ? r : undefined;
    });
    // Before: `as` was dropped silently and the answer went ahead as token:carol.
    const answer = await httpJson('POST', `${server.url}/api/approvals/${run.approvals[0].id}`, { decision: 'reject', as: 'bob' }, auth);
    expect(answer.status, JSON.stringify(answer.body)).toBe(400);
    expect(answer.body.error).toContain('is not who authenticated (token:carol)');
    const abort = await httpJson('POST', `${server.url}/api/runs/${run.id}/abort`, { as: 'alice' }, auth);
    expect(abort.status).toBe(400);
    expect((await httpJson('POST', `${server.url}/api/runs`, { playbook: 'attack', as: 'alice' }, auth)).status).toBe(400);
    expect((await httpJson('GET', `${server.url}/api/runs/${run.id}`, undefined, SERVICE)).body.approvals[0].status).toBe('pending');
  });

  it('a login over another person’s session in the same browser ends that session on the server', async () => {
    const first = await consoleLogin(await createToken('rita'));
    const res = await request(`${server.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: first.cookie! },
      body: new URLSearchParams({ token: await createToken('sam') }).toString(),
    });
    await res.body.text();
    expect(res.statusCode).toBe(303);
    expect((await httpJson('GET', `${server.url}/api/whoami`, undefined, { cookie: first.cookie! })).status).toBe(401);
    const { rows } = await db.pool.query("select actor, data from timeline_events where chain_id = 'access' and kind = 'session.ended' order by seq desc limit 1");
    expect(rows[0]).toMatchObject({ actor: 'token:rita', data: { by: 'token:sam' } });
  });
});

describe('the access chain is readable, so a reviewer can see who minted which token', () => {
  it('GET /api/audit/access pages back through it, newest first, behind authentication', async () => {
    await createToken('tess', '--group', 'sre');
    expect((await httpJson('GET', `${server.url}/api/audit/access`)).status).toBe(401);
    const page = await httpJson('GET', `${server.url}/api/audit/access?limit=5`, undefined, SERVICE);
    expect(page.status).toBe(200);
    expect(page.body.items).toHaveLength(5);
    const seqs = page.body.items.map((e: { seq: number }) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    const created = page.body.items.find((e: { kind: string; data: { user?: string } }) => e.kind === 'token.created' && e.data.user === 'tess');
    expect(created).toMatchObject({ actor: expect.stringMatching(/^operator:/), data: { groups: ['sre'] } });
    const older = await httpJson('GET', `${server.url}/api/audit/access?limit=5&before=${seqs.at(-1)}`, undefined, SERVICE);
    expect(older.body.items[0].seq).toBe(seqs.at(-1) - 1);
  });
});

describe('a read that is an act', () => {
  it('GET /api/tokens from another site (an <img> on a sibling subdomain carries the SameSite cookie) writes nothing to the access chain', async () => {
    const { cookie } = await consoleLogin(await createToken('vera'));
    const count = async () => (await db.pool.query("select count(*)::int as n from timeline_events where chain_id = 'access' and actor = 'token:vera' and kind like 'access.%'")).rows[0].n as number;
    const before = await count();
    for (const site of ['cross-site', 'same-site']) {
      const res = await request(`${server.url}/api/tokens`, { headers: { cookie: cookie!, 'sec-fetch-site': site, 'sec-fetch-mode': 'no-cors' } });
      await res.body.text();
      expect(res.statusCode, site).toBe(403);
    }
    expect(await count()).toBe(before);
    // The console itself (same-origin) and scripts (no Sec-Fetch-Site) are asked as before (vera may not list tokens).
    const own = await request(`${server.url}/api/tokens`, { headers: { cookie: cookie!, 'sec-fetch-site': 'same-origin' } });
    await own.body.text();
    expect(own.statusCode).toBe(403);
    expect(await count()).toBe(before + 1);
  });
});

describe('a local-mode session after authentication was set up', () => {
  it('no longer reads anything, and the login page is shown instead of a redirect loop', async () => {
    const localDb = await createTestDatabase();
    let local: ServerProcess | undefined;
    let secured: ServerProcess | undefined;
    try {
      local = await startServer({ DATABASE_URL: localDb.url, FIREBREAK_PLAYBOOKS: dir });
      const res = await request(`${local.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=mallory' });
      await res.body.text();
      const cookie = String(res.headers['set-cookie']).split(';')[0]!;
      expect((await httpJson('GET', `${local.url}/api/whoami`, undefined, { cookie })).body.id).toBe('local:mallory');
      await local.stop();
      // The operator sets up authentication on the same database.
      secured = await startServer({ DATABASE_URL: localDb.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_API_TOKEN: API_TOKEN });
      expect((await httpJson('GET', `${secured.url}/api/runs`, undefined, { cookie })).status).toBe(401);
      const page = await request(`${secured.url}/login?next=%2F`, { headers: { cookie } });
      expect(page.statusCode).toBe(200);
      expect(await page.body.text()).toContain('<form');
    } finally {
      await local?.stop();
      await secured?.stop();
      await localDb.drop();
    }
  });
});
