/**
 * The console over plain HTTP against the real server: login and session
 * cookie, CSRF rules on writes, escaping, pages and fragments, and the
 * server-sent event stream. (test/console/browser.test.ts drives it in Chromium.)
 */
import { rm } from 'node:fs/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertBody, writePlaybooks } from '../timeline/fixture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';

const TOKEN = `console-token-${Math.random().toString(36).slice(2)}`;
const BEARER = { authorization: `Bearer ${TOKEN}` };

let db: TestDatabase;
let target: Target;
let server: ServerProcess;
let dir: string;
/** alice's console session (she logs in with her personal token; alice is SRE in policies/data.json). */
let cookie: string;
let aliceToken: string;
let bobToken: string;

beforeAll(async () => {
  db = await createTestDatabase();
  target = await startTarget();
  dir = await writePlaybooks({
    'console-http.yaml': `
name: console-http
triggers:
  - matchers: ['alertname=~"ConsoleHttp.*"']
steps:
  - id: look
    action: note
    with: { text: "looking" }
  - id: rollback
    action: http.request
    impact: high
    with: { method: POST, url: "${target.url}/rollback" }
`,
  });
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_HTTP_ALLOW: target.host, FIREBREAK_API_TOKEN: TOKEN });
  [aliceToken, bobToken] = await Promise.all(['alice', 'bob'].map(async (u) => (await runCli(['token', 'create', u], { DATABASE_URL: db.url })).stdout.trim()));
});

afterAll(async () => {
  // A browser may still be listening to /api/events: shutdown must not wait for it.
  const lingering = server ? await request(`${server.url}/api/events`, { headers: { authorization: `Bearer ${TOKEN}` } }).catch(() => undefined) : undefined;
  const stopping = Date.now();
  expect(await server?.stop()).toBe(0);
  expect(Date.now() - stopping).toBeLessThan(10_000);
  await lingering?.body.text().catch(() => {});
  await target?.close();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await request(`${server.url}${path}`, { headers });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function postForm(path: string, form: Record<string, string>, headers: Record<string, string> = {}) {
  const res = await request(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form).toString() });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function waitingRun(labels: Record<string, string>, extra: Record<string, unknown> = {}) {
  const fired = await httpJson('POST', `${server.url}/hooks/generic`, alertBody(labels, extra));
  expect(fired.status).toBe(202);
  const runId: string = fired.body.runs[0];
  const run = await eventually(async () => {
    const r = (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, BEARER)).body;
    return r.status === 'waiting' ? r : undefined;
  });
  return { runId, approvalId: run.approvals[0].id as string };
}

describe('login', () => {
  it('sends pages to the login form while a token protects the console', async () => {
    const page = await get('/');
    expect(page.status).toBe(303);
    expect(page.headers.location).toBe('/login?next=%2F');
    const runPage = await get('/runs/00000000-0000-4000-8000-000000000000?x=1');
    expect(runPage.headers.location).toBe(`/login?next=${encodeURIComponent('/runs/00000000-0000-4000-8000-000000000000?x=1')}`);
    const login = await get('/login?next=%2F');
    expect(login.status).toBe(200);
    expect(login.text).toContain('<form method="post" action="/login"');
    expect(login.headers['content-security-policy']).toMatch(/script-src 'self'/);
    expect(login.headers['x-frame-options']).toBe('DENY');
    expect((await get('/api/runs')).status).toBe(401);
    expect((await get('/api/events')).status).toBe(401);
  });

  it('refuses a wrong token and sets an HttpOnly SameSite=Strict session for the right one', async () => {
    const wrong = await postForm('/login', { token: 'nope', next: '/' });
    expect(wrong.status).toBe(401);
    expect(wrong.text).toContain('That token is not right.');
    expect(wrong.headers['set-cookie']).toBeUndefined();

    const ok = await postForm('/login', { token: aliceToken, next: '/?status=waiting' });
    expect(ok.status).toBe(303);
    expect(ok.headers.location).toBe('/?status=waiting');
    const setCookie = String(ok.headers['set-cookie']);
    expect(setCookie).toMatch(/^firebreak_session=[A-Za-z0-9_-]{43}; Max-Age=\d+; Path=\/; HttpOnly; SameSite=Strict$/);
    expect(setCookie).not.toContain(aliceToken.slice(-43));
    cookie = setCookie.split(';')[0]!;
    // The service token logs in too (as `service`, which reads but cannot answer approvals).
    const service = await postForm('/login', { token: TOKEN });
    expect(service.status).toBe(303);
    expect(String(service.headers['set-cookie'])).not.toContain(TOKEN);

    const evil = await postForm('/login', { token: TOKEN, next: '//evil.example/x' });
    expect(evil.headers.location).toBe('/');
    // A login posted from another site is refused outright.
    expect((await postForm('/login', { token: TOKEN }, { origin: 'https://evil.example' })).status).toBe(403);
  });

  it('accepts the session on pages and the API, but not the raw token as a cookie', async () => {
    expect((await get('/', { cookie })).status).toBe(200);
    expect((await get('/api/runs', { cookie })).status).toBe(200);
    expect((await get('/api/runs', { cookie: `firebreak_session=${TOKEN}` })).status).toBe(401);
    expect((await get('/api/runs', { cookie: `firebreak_session=${aliceToken}` })).status).toBe(401);
    expect((await get('/api/runs', { cookie: 'firebreak_session=%E0%A4%A' })).status).toBe(401);
    const tampered = cookie.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
    expect((await get('/api/runs', { cookie: tampered })).status).toBe(401);
  });
});

describe('pages', () => {
  let runId: string;
  let approvalId: string;

  beforeAll(async () => {
    ({ runId, approvalId } = await waitingRun({ alertname: 'ConsoleHttpXss', service: 'checkout' }, { summary: '<img src=x onerror=alert(1)> & "quotes"' }));
  });

  it('escapes everything that came from outside', async () => {
    const page = await get(`/runs/${runId}`, { cookie });
    expect(page.status).toBe(200);
    expect(page.text).toContain('&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quotes&quot;');
    expect(page.text).not.toContain('<img src=x');
  });

  it('lists runs newest first with the waiting approval and its buttons', async () => {
    const page = await get('/', { cookie });
    expect(page.text).toContain(`id="approve-${approvalId}"`);
    expect(page.text).toContain(`id="reject-${approvalId}"`);
    expect(page.text).toMatch(new RegExp(`<tr class="run-row" data-run="${runId}" data-status="waiting">`));
    expect(page.text).toContain('<script src="/console/app.js" defer></script>');
    expect(page.text).not.toMatch(/<script>|https?:\/\/(?!127\.0\.0\.1)[a-z]/i);
    const filtered = await get('/?status=succeeded', { cookie });
    expect(filtered.text).not.toContain(`data-run="${runId}"`);
    const bogus = await get('/?status=bogus', { cookie });
    expect(bogus.status).toBe(200);
    expect(bogus.text).toContain('Unknown status &quot;bogus&quot;');
  });

  it('draws the run on a time axis beside its event table', async () => {
    const page = await get(`/runs/${runId}`, { cookie });
    expect(page.text).toMatch(/<svg class="time-axis" role="img"/);
    expect(page.text).toMatch(/<g class="span approval open" data-kind="approval" data-step="rollback">/);
    expect(page.text).toMatch(/<path class="span policy" [^>]*data-kind="policy" data-step="rollback">/);
    expect(page.text).toContain(`id="abort-${runId}"`);
    expect(page.text).toContain('<table class="events">');
    expect(page.text).toMatch(/<time datetime="[^"]+Z" title="[^"]+">[\d:.]+<\/time><br><span class="muted">T\+/);
  });

  it('answers fragments for live updates and 404 pages for unknown runs', async () => {
    const fragment = await get('/', { cookie, 'x-firebreak-fragment': '1' });
    expect(fragment.text).not.toContain('<html');
    expect(fragment.text).toContain('id="approvals"');
    expect((await get('/', { 'x-firebreak-fragment': '1' })).status).toBe(401);
    const missing = await get('/runs/00000000-0000-4000-8000-000000000000', { cookie });
    expect(missing.status).toBe(404);
    expect(missing.text).toContain('not found');
    expect((await get('/runs/not-a-uuid', { cookie })).status).toBe(404);
  });

  it('serves its own script and stylesheet', async () => {
    const js = await get('/console/app.js');
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/^text\/javascript/);
    expect(js.text).toContain('x-firebreak-console');
    expect((await get('/console/app.css')).headers['content-type']).toMatch(/^text\/css/);
  });

  describe('CSRF', () => {
    const answer = (headers: Record<string, string>) => httpJson('POST', `${server.url}/api/approvals/${approvalId}`, { decision: 'approve' }, headers);

    it('refuses cookie-authenticated writes without the console header, from other origins, or cross-site', async () => {
      const noHeader = await answer({ cookie });
      expect(noHeader.status).toBe(403);
      expect(noHeader.body.error).toMatch(/x-firebreak-console/);
      const otherOrigin = await answer({ cookie, 'x-firebreak-console': '1', origin: 'https://evil.example' });
      expect(otherOrigin.status).toBe(403);
      expect(otherOrigin.body.error).toMatch(/cross-origin/);
      expect((await answer({ cookie, 'x-firebreak-console': '1', origin: 'null' })).status).toBe(403);
      expect((await answer({ cookie, 'x-firebreak-console': '1', 'sec-fetch-site': 'cross-site' })).status).toBe(403);
      // Without the token, nothing is written at all.
      expect((await answer({ 'x-firebreak-console': '1' })).status).toBe(401);
      const run = (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, BEARER)).body;
      expect(run.approvals[0].status).toBe('pending');
    });

    it('accepts the console’s own request and records who the session is (token:alice)', async () => {
      const ok = await answer({ cookie, 'x-firebreak-console': '1', origin: server.url, 'sec-fetch-site': 'same-origin' });
      expect(ok.status).toBe(200);
      expect(ok.body.outcome).toBe('approved');
      const run = await eventually(async () => {
        const r = (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, BEARER)).body;
        return r.status === 'succeeded' ? r : undefined;
      });
      expect(run.approvals[0].decidedBy).toBe('token:alice');
    });

    it('leaves scripts with a Bearer token alone', async () => {
      const second = await waitingRun({ alertname: 'ConsoleHttpAbort', service: 'checkout' });
      const aborted = await httpJson('POST', `${server.url}/api/runs/${second.runId}/abort`, {}, { authorization: `Bearer ${bobToken}` });
      expect(aborted.status).toBe(202);
    });
  });
});

describe('server-sent events', () => {
  it('streams run changes, this replica’s and others’', async () => {
    const controller = new AbortController();
    const res = await request(`${server.url}/api/events`, { headers: { cookie }, signal: controller.signal });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    let text = '';
    const reading = (async () => {
      try {
        for await (const chunk of res.body) text += chunk.toString();
      } catch {
        /* aborted */
      }
    })();
    await eventually(async () => text.includes(': firebreak live updates'));
    // Written by this server's engine...
    const { runId } = await waitingRun({ alertname: 'ConsoleHttpLive', service: 'cart' });
    await eventually(async () => text.includes(`"runId":"${runId}"`) && text.includes('approval.requested'));
    expect(text).toMatch(/event: run\nid: \d+\ndata: \{"runId":/);
    // ...and by another replica on the same database, whose engine this process never hears from:
    // the feed's poll of the timeline table finds it.
    const replica = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_HTTP_ALLOW: target.host, FIREBREAK_API_TOKEN: TOKEN, FIREBREAK_WORKERS: '0' });
    try {
      const other = await httpJson('POST', `${replica.url}/api/runs/${runId}/abort`, { reason: 'testing live updates' }, { authorization: `Bearer ${bobToken}` });
      expect(other.status).toBe(202);
      await eventually(async () => text.includes('run.abort_requested'));
    } finally {
      await replica.stop();
    }
    controller.abort();
    await reading;

    const bad = await get('/api/events?run=nope', { cookie });
    expect(bad.status).toBe(400);
  });
});

describe('logout', () => {
  it('clears the session cookie and ends the session on the server', async () => {
    const out = await postForm('/logout', {}, { cookie });
    expect(out.status).toBe(303);
    expect(out.headers.location).toBe('/login');
    expect(String(out.headers['set-cookie'])).toMatch(/^firebreak_session=; Max-Age=0; Path=\/; HttpOnly; SameSite=Strict/);
    expect((await get('/api/runs', { cookie })).status).toBe(401);
  });
});
