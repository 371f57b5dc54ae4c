/**
 * Checks bound to the matched route, never to URL prefixes: the issue's
 * reproductions (`/%61pi/...` with no token and no CSRF check), every other
 * spelling of a path, the Host allow-list (DNS rebinding), /metrics behind
 * its optional token, and a route that declares no rule (refused).
 */
import { rm } from 'node:fs/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertBody, writePlaybooks } from '../timeline/fixture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { oneApprovalPlaybook } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';

const API_TOKEN = `svc-${Math.random().toString(36).slice(2)}`;
const WEBHOOK_TOKEN = `hook-${Math.random().toString(36).slice(2)}`;
const METRICS_TOKEN = `metrics-${Math.random().toString(36).slice(2)}`;
const SERVICE = { authorization: `Bearer ${API_TOKEN}` };

let db: TestDatabase;
let server: ServerProcess;
let dir: string;
let alice: string;

/** A raw request: undici sends the path exactly as given (no normalising of %61 or //). */
async function raw(method: string, path: string, headers: Record<string, string> = {}, body?: string) {
  const res = await request(`${server.url}${path}`, { method: method as 'GET', headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...headers }, body });
  const text = await res.body.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, text, json, headers: res.headers };
}

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await writePlaybooks(oneApprovalPlaybook('routes', 'Routes'));
  server = await startServer({
    DATABASE_URL: db.url,
    FIREBREAK_PLAYBOOKS: dir,
    FIREBREAK_API_TOKEN: API_TOKEN,
    FIREBREAK_WEBHOOK_TOKEN: WEBHOOK_TOKEN,
    FIREBREAK_METRICS_TOKEN: METRICS_TOKEN,
    FIREBREAK_ALLOWED_HOSTS: 'firebreak.internal:9000,alerts.internal,10.20.0.0/16',
  });
  const created = await runCli(['token', 'create', 'alice'], { DATABASE_URL: db.url });
  expect(created.code).toBe(0);
  alice = created.stdout.trim();
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function waitingApproval(): Promise<{ runId: string; approvalId: string }> {
  const fired = await httpJson('POST', `${server.url}/hooks/generic`, alertBody({ alertname: 'Routes', service: `s${Math.random()}` }), { authorization: `Bearer ${WEBHOOK_TOKEN}` });
  expect(fired.status).toBe(202);
  const runId = fired.body.runs[0] as string;
  const run = await eventually(async () => {
    const r = (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, SERVICE)).body;
    return r.status === 'waiting' ? r : undefined;
  });
  return { runId, approvalId: run.approvals[0].id };
}

describe('no spelling of a path reaches a handler unchecked', () => {
  it('GET /%61pi/runs and /%61pi/approvals need the token like /api/... (the issue’s reproduction)', async () => {
    for (const path of ['/%61pi/runs', '/%61pi/approvals', '/%61%70%69/runs', '/api/%72uns', '/api/runs%3Fx']) {
      const res = await raw('GET', path);
      expect(res.status, path).not.toBe(200);
      expect([401, 404], path).toContain(res.status);
    }
    expect((await raw('GET', '/%61pi/runs')).status).toBe(401);
    expect((await raw('GET', '/%61pi/approvals')).status).toBe(401);
    // With the token the decoded path is the same route, checked the same way.
    expect((await raw('GET', '/%61pi/runs', SERVICE)).status).toBe(200);
  });

  it('POST /%61pi/approvals/<id> can approve nothing without a token or across sites', async () => {
    const { runId, approvalId } = await waitingApproval();
    const body = JSON.stringify({ decision: 'approve' });
    expect((await raw('POST', `/%61pi/approvals/${approvalId}`, {}, body)).status).toBe(401);
    // A console session riding along from another site is refused as CSRF, however the path is spelled.
    const login = await request(`${server.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: alice }).toString() });
    await login.body.text();
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    for (const path of [`/%61pi/approvals/${approvalId}`, `/api/approvals/${approvalId}`]) {
      expect((await raw('POST', path, { cookie, origin: 'https://evil.example' }, body)).status, path).toBe(403);
      expect((await raw('POST', path, { cookie, 'sec-fetch-site': 'cross-site' }, body)).status, path).toBe(403);
      expect((await raw('POST', path, { cookie }, body)).json.error, path).toMatch(/x-firebreak-console/);
    }
    const run = (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, SERVICE)).body;
    expect(run.approvals[0].status).toBe('pending');
  });

  it('other spellings (//, /./, case, trailing slash, ;) are unknown routes or checked ones, never open', async () => {
    for (const path of ['//api/runs', '/api//runs', '/api/./runs', '/api/../api/runs', '/API/runs', '/Api/Runs', '/api/runs/', '/api/runs;x', '/api/runs;', '/api/runs%2f', '/api%2Fruns', '/./api/runs', '/api/runs%00', '/api/runs/%2e', '/%2e/api/runs']) {
      const res = await raw('GET', path);
      expect([401, 404, 400], `${path} -> ${res.status}`).toContain(res.status);
      if (res.status !== 401) expect(res.text, path).not.toContain('"items"');
    }
  });

  it('webhooks need their token on the decoded route too, and refuse what only a browser sends cross-site', async () => {
    const body = JSON.stringify(alertBody({ alertname: 'Nothing' }));
    const hook = { authorization: `Bearer ${WEBHOOK_TOKEN}` };
    expect((await raw('POST', '/%68ooks/generic', {}, body)).status).toBe(401);
    expect((await raw('POST', '/%68ooks/generic', hook, body)).status).toBe(202);
    // Alertmanager, Grafana, PagerDuty and Datadog are servers: they send no Origin or Sec-Fetch-Site.
    expect((await raw('POST', '/hooks/generic', { ...hook, origin: 'https://evil.example' }, body)).status).toBe(403);
    expect((await raw('POST', '/hooks/generic', { ...hook, 'sec-fetch-site': 'cross-site' }, body)).status).toBe(403);
  });
});

describe('Host allow-list (DNS rebinding)', () => {
  it('answers 421 to a Host that is not ours, even with a valid token', async () => {
    for (const host of ['evil.example', `evil.example:${server.port}`, `localhost.evil.example:${server.port}`, `127.0.0.1:${server.port + 1}`, 'localhost', '', 'a b']) {
      const res = await raw('GET', '/api/runs', { ...SERVICE, host });
      expect(res.status, `Host: ${host}`).toBe(421);
    }
    const res = await raw('GET', '/api/runs', { ...SERVICE, host: 'rebind.attacker.test' });
    expect(res.json.error).toMatch(/does not answer for host/);
    // Pages and webhooks too: the console is what a rebinding page would drive.
    expect((await raw('GET', '/', { host: 'rebind.attacker.test' })).status).toBe(421);
    expect((await raw('GET', '/login', { host: 'rebind.attacker.test' })).status).toBe(421);
  });

  it('accepts the public URL’s host, loopback names with the listening port, and FIREBREAK_ALLOWED_HOSTS', async () => {
    for (const host of [`127.0.0.1:${server.port}`, `localhost:${server.port}`, `LOCALHOST:${server.port}`, `127.0.0.2:${server.port}`, `[::1]:${server.port}`, 'firebreak.internal:9000', 'alerts.internal', 'alerts.internal:1234', '10.20.3.4:8080']) {
      expect((await raw('GET', '/api/runs', { ...SERVICE, host })).status, `Host: ${host}`).toBe(200);
    }
    for (const host of ['firebreak.internal:9001', '10.21.0.1:8080', '10.20.3.4.nip.io:8080']) {
      expect((await raw('GET', '/api/runs', { ...SERVICE, host })).status, `Host: ${host}`).toBe(421);
    }
  });
});

describe('/metrics behind FIREBREAK_METRICS_TOKEN', () => {
  it('needs the metrics token when it is set (and no other token will do)', async () => {
    expect((await raw('GET', '/metrics')).status).toBe(401);
    expect((await raw('GET', '/metrics', SERVICE)).status).toBe(401);
    expect((await raw('GET', '/%6detrics')).status).toBe(401);
    const ok = await raw('GET', '/metrics', { authorization: `Bearer ${METRICS_TOKEN}` });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('firebreak_');
  });
});

describe('a route that declares no access rule', () => {
  it('is refused (fail closed), whoever asks', async () => {
    const { buildServer } = await import('../../src/api/server.js');
    const { loadConfig } = await import('../../src/config/index.js');
    const pino = (await import('pino')).default;
    const config = loadConfig({ DATABASE_URL: db.url, PORT: '18080', FIREBREAK_API_TOKEN: API_TOKEN });
    let called = 0;
    const app = await buildServer({
      config,
      logger: pino({ level: 'silent' }),
      pool: db.pool,
      // Ingestion is never reached here: only the guard and the two routes below run.
      ingestor: {} as never,
      extend: (app) => {
        app.get('/api/forgotten', async () => {
          called++;
          return { secret: 'should not be served' };
        });
        app.get('/api/declared', { config: { access: 'read' } }, async () => ({ ok: true }));
      },
    });
    try {
      const host = 'localhost:18080';
      const forgotten = await app.inject({ method: 'GET', url: '/api/forgotten', headers: { host, ...SERVICE } });
      expect(forgotten.statusCode).toBe(403);
      expect(forgotten.json().error).toMatch(/declares no access rule/);
      expect((await app.inject({ method: 'GET', url: '/%61pi/forgotten', headers: { host } })).statusCode).toBe(403);
      expect(called).toBe(0);
      expect((await app.inject({ method: 'GET', url: '/api/declared', headers: { host, ...SERVICE } })).statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/api/declared', headers: { host } })).statusCode).toBe(401);
      // PORT=0: loopback names are checked against the port the server really listens on.
      const url = await app.listen({ port: 0, host: '127.0.0.1' });
      const port = new URL(url).port;
      const viaLocalhost = await request(`${url}/healthz`, { headers: { host: `localhost:${port}` } });
      await viaLocalhost.body.text();
      expect(viaLocalhost.statusCode).toBe(200);
      const otherPort = await request(`${url}/healthz`, { headers: { host: 'localhost:18080' } });
      await otherPort.body.text();
      expect(otherPort.statusCode).toBe(421);
    } finally {
      await app.close();
    }
  });
});
