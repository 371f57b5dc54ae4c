/**
 * The console in a real browser: playwright-core driving Debian's Chromium
 * against the real server, signing in through a real OpenID provider
 * (oidc-provider) with the authorization code flow. Sign in as alice, see a
 * waiting run, approve it as oidc:alice, watch it finish through live
 * updates, look at the run's picture; sign out and in as carol for a refused
 * answer, an approval from another channel arriving live, and an abort from
 * the keyboard. Screenshots go to test-artifacts/.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertBody, writePlaybooks } from '../timeline/fixture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startOidcProvider, type TestProvider } from '../helpers/oidc.js';
import { eventually, freePort, httpJson, ROOT, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';

const CHROMIUM = process.env.FIREBREAK_CHROMIUM ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`test/console/browser.test.ts skipped: no Chromium at ${CHROMIUM} (install the "chromium" package, or set FIREBREAK_CHROMIUM)`);

const TOKEN = `browser-token-${Math.random().toString(36).slice(2)}`;
const BEARER = { authorization: `Bearer ${TOKEN}` };
const ARTIFACTS = join(ROOT, 'test-artifacts');
const LONG_PATH = '/deployments/checkout-payments-gateway-eu-west-1-canary-2026-05-14T09:12:30.123Z/history-with-a-deliberately-long-path';

let db: TestDatabase;
let idp: TestProvider;
let target: Target;
let server: ServerProcess;
let dir: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

async function waitingRun(alertname: string) {
  const fired = await httpJson('POST', `${server.url}/hooks/generic`, alertBody({ alertname, service: 'checkout', severity: 'critical' }, { summary: `${alertname}: 5xx ratio above 5% on checkout` }));
  expect(fired.status).toBe(202);
  const runId: string = fired.body.runs[0];
  const run = await eventually(async () => {
    const r = (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, BEARER)).body;
    if (r.finishedAt) throw new Error(`run ${runId} ended ${r.status} before asking for approval: ${JSON.stringify(r.steps)} ${JSON.stringify((await httpJson('GET', `${server.url}/api/runs/${runId}/timeline`, undefined, BEARER)).body.events.map((e: { summary: string; why: string | null }) => `${e.summary} ${e.why ?? ''}`))}`);
    return r.status === 'waiting' ? r : undefined;
  });
  return { runId, approvalId: run.approvals[0].id as string };
}

/** Sign in through the provider's own login page, as a person would. */
async function signIn(login: string, next = '/'): Promise<void> {
  await page.goto(`${server.url}${next}`);
  await page.waitForURL(/\/login\?next=/);
  await page.click('#sso');
  await page.waitForURL(new RegExp(`^${idp.issuer}/`));
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'correct horse');
  await page.click('button[type=submit]');
  await page.waitForURL(`${server.url}${next}`);
}

describe.skipIf(!hasChromium)(`console in headless Chromium (${CHROMIUM})`, () => {
  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    db = await createTestDatabase();
    target = await startTarget();
    target.respond('/rollback', { status: 200, body: { rolledBack: true }, delayMs: 300 });
    target.respond(LONG_PATH, { status: 500, body: { error: 'upstream-deployment-service-unavailable-while-reading-history' } });
    target.respond(`${LONG_PATH}/rollback`, { status: 500, body: { error: 'rollback-refused-by-deployment-service-because-of-a-long-reason' } });
    dir = await writePlaybooks({
      'checkout-rollback.yaml': `
name: checkout-rollback
description: Roll back checkout when its error rate is high
triggers:
  - matchers: ['alertname=~"Checkout.*"']
steps:
  # Gather steps are notes here: the policy's blast-radius rule counts every
  # http.request to this host, and the test runs three rollbacks.
  - id: error_rate
    action: note
    with: { text: "5xx ratio 7.5%" }
  - id: cleanup
    action: exec
    with: { script: cleanup-disk.sh, args: ["\${{ run.id }}"] }
    retry: { attempts: 3, backoff: 200ms }
    compensate:
      action: exec
      with: { script: restore-disk.sh }
  - id: rollback
    action: http.request
    impact: high
    with: { method: POST, url: "${target.url}/rollback" }
    compensate:
      action: http.request
      with: { method: POST, url: "${target.url}/roll-forward" }
  - id: verify
    action: wait
    with: { duration: 400ms }
`,
      // A run whose steps table has long, unbreakable notes (URLs in error messages) and ends failed.
      'layout-check.yaml': `
name: layout-check
description: Long notes and a failed end, to check the run page's layout
triggers:
  - matchers: ['alertname="LayoutCheck"']
steps:
  - id: gather_deployment_history_for_the_service
    action: http.request
    with: { method: GET, url: "${target.url}${LONG_PATH}?include=everything&limit=1000&service=checkout-payments-gateway" }
    on_failure: continue
  - id: context
    action: note
    with: { text: "checkout-payments-gateway-eu-west-1-canary-2026-05-14T09:12:30.123Z" }
  - id: rollback
    action: http.request
    with: { method: POST, url: "${target.url}${LONG_PATH}/rollback" }
`,
    }, {
      // Busy the first time for each run (so the step is retried), done the second.
      // (cleanup-disk.sh is the one script the sample policy lets playbooks run.)
      'cleanup-disk.sh': '#!/bin/sh\nmarker="$(dirname "$0")/.cleaned-$1"\nif [ ! -e "$marker" ]; then touch "$marker"; echo "disk busy, try again" >&2; exit 1; fi\necho cleaned\n',
      'restore-disk.sh': '#!/bin/sh\necho restored\n',
    });
    const port = await freePort();
    // alice (SRE) and carol (on-call) by their names in policies/data.json; the provider says so too.
    idp = await startOidcProvider({
      redirectUris: [`http://127.0.0.1:${port}/auth/oidc/callback`],
      accounts: { alice: { preferred_username: 'alice', groups: ['sre'] }, carol: { preferred_username: 'carol', groups: ['oncall'] } },
    });
    server = await startServer({
      PORT: String(port),
      DATABASE_URL: db.url,
      FIREBREAK_PLAYBOOKS: dir,
      FIREBREAK_HTTP_ALLOW: target.host,
      FIREBREAK_API_TOKEN: TOKEN,
      FIREBREAK_OIDC_ISSUER: idp.issuer,
      FIREBREAK_OIDC_CLIENT_ID: idp.clientId,
      FIREBREAK_OIDC_CLIENT_SECRET: idp.clientSecret,
    });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, timezoneId: 'Europe/Berlin' });
    page = await context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error' && !/Failed to load resource|EventSource|ERR_/.test(msg.text())) pageErrors.push(msg.text());
    });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await idp?.close();
    await target?.close();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('logs in, shows the waiting run, approves it and watches it finish', async () => {
    const { runId, approvalId } = await waitingRun('CheckoutErrors');

    await signIn('alice');
    const session = (await context.cookies()).find((c) => c.name === 'firebreak_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(await page.textContent('#whoami')).toBe('oidc:alice');

    const row = page.locator(`tr.run-row[data-run="${runId}"]`);
    await expect.poll(() => row.getAttribute('data-status')).toBe('waiting');
    await page.locator('#live-status', { hasText: 'live' }).waitFor();
    const approve = page.locator(`#approve-${approvalId}`);
    await approve.waitFor();
    expect(await page.locator(`#approvals article`).first().textContent()).toContain('group:sre');
    expect(await page.locator('time').first().textContent()).toMatch(/UTC$/);
    await page.screenshot({ path: join(ARTIFACTS, 'console-runs-waiting.png'), fullPage: true });

    // The session says who answers: no name to type, nothing kept in the browser.
    await approve.click();
    await page.locator('#flash', { hasText: 'Approved as oidc:alice.' }).waitFor();
    expect(await page.evaluate(() => localStorage.length)).toBe(0);

    // No reload: the server-sent event brings the change.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    await expect.poll(() => row.getAttribute('data-status'), { timeout: 20_000 }).toBe('succeeded');
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    expect(await page.locator(`#approve-${approvalId}`).count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, 'console-runs-finished.png'), fullPage: true });

    const run = (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, BEARER)).body;
    expect(run.approvals[0]).toMatchObject({ status: 'approved', decidedBy: 'oidc:alice' });
    expect(target.count('/rollback')).toBe(1);

    // The run page: steps on a time axis beside the event table.
    await row.locator('a').click();
    await page.waitForURL(`${server.url}/runs/${runId}`);
    const svg = page.locator('svg.time-axis');
    await svg.waitFor();
    for (const kind of ['gather', 'approval', 'mitigation']) expect(await svg.locator(`g.span.${kind}`).count(), kind).toBeGreaterThan(0);
    expect(await svg.locator('g.span.mitigation.failed[data-step="cleanup"]').count()).toBe(1);
    // A decision before every step (and again for the approved step when it resumes).
    expect(await svg.locator('path.span.policy').count()).toBeGreaterThanOrEqual(4);
    expect(await svg.locator('g.span.approval title').textContent()).toMatch(/approved by oidc:alice/);
    const events = page.locator('table.events tbody tr');
    expect(await events.count()).toBeGreaterThan(10);
    expect(await page.locator('table.events').textContent()).toContain('step rollback approved by oidc:alice');
    expect(await page.locator('.durations').textContent()).toMatch(/Alert → first action/);
    await page.screenshot({ path: join(ARTIFACTS, 'console-run.png'), fullPage: true });
  });

  it('shows a refused answer, then an approval from another channel arrives live', async () => {
    const { runId, approvalId } = await waitingRun('CheckoutLatency');
    // Log out (the session ends on the server), sign in as carol: on-call, not SRE.
    await page.click('form.logout button');
    await page.waitForURL(/\/login/);
    expect((await context.cookies()).find((c) => c.name === 'firebreak_session')).toBeUndefined();
    // Logging out of Firebreak does not log out of the provider: forget its session too (as a shared machine would).
    await context.clearCookies({ name: /^_(session|interaction)/ });
    await signIn('carol', `/runs/${runId}`);
    await page.locator('#live-status', { hasText: 'live' }).waitFor();
    expect(await page.textContent('#whoami')).toBe('oidc:carol');
    // The approve policy says no, and the page says why.
    await page.click(`#approve-${approvalId}`);
    await page.locator('#flash.error', { hasText: 'Not allowed' }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'console-run-waiting.png'), fullPage: true });

    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 7));
    const bob = (await runCli(['token', 'create', 'bob'], { DATABASE_URL: db.url })).stdout.trim();
    const answer = await httpJson('POST', `${server.url}/api/approvals/${approvalId}`, { decision: 'approve' }, { authorization: `Bearer ${bob}` });
    expect(answer.status).toBe(200);
    await page.locator('.run-status .badge.status-succeeded').waitFor({ timeout: 20_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(7);
    expect(await page.locator('table.events').textContent()).toContain('oidc:carol may not approve step rollback');
  });

  it('aborts a waiting run from the keyboard', async () => {
    const { runId } = await waitingRun('CheckoutSaturation');
    await page.goto(`${server.url}/runs/${runId}`);
    const abort = page.locator(`#abort-${runId}`);
    await abort.waitFor();
    page.once('dialog', (d) => void d.accept());
    await abort.focus();
    await page.keyboard.press('Enter');
    await page.locator('.run-status .badge.status-aborted').waitFor({ timeout: 20_000 });
    expect(await page.locator(`#abort-${runId}`).count()).toBe(0);
    // The cleanup step had run, so its compensation shows on the picture.
    await page.locator('svg.time-axis g.span.compensation[data-step="cleanup"]').waitFor({ timeout: 20_000 });
    await page.screenshot({ path: join(ARTIFACTS, 'console-run-aborted.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  });

  type Box = { x: number; y: number; width: number; height: number };
  const overlap = (a: Box, b: Box) => a.x < b.x + b.width - 0.5 && b.x < a.x + a.width - 0.5 && a.y < b.y + b.height - 0.5 && b.y < a.y + a.height - 0.5;
  const inside = (a: Box, outer: Box) => a.x >= outer.x - 0.5 && a.x + a.width <= outer.x + outer.width + 0.5;

  for (const [width, height] of [[1280, 800], [1920, 1080]] as const) {
    it(`lays the run page out without overlaps at ${width}x${height}`, async () => {
      const fired = await httpJson('POST', `${server.url}/hooks/generic`, alertBody({ alertname: 'LayoutCheck', service: 'checkout', severity: 'critical' }));
      const runId: string = fired.body.runs[0];
      await eventually(async () => (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, BEARER)).body.finishedAt);
      const sized = await browser.newContext({ viewport: { width, height }, timezoneId: 'Europe/Berlin' });
      const p = await sized.newPage();
      try {
        await p.goto(`${server.url}/runs/${runId}`);
        await p.waitForURL(/\/login\?next=/);
        await p.fill('#token', TOKEN);
        await p.click('button[type=submit]');
        await p.waitForURL(`${server.url}/runs/${runId}`);
        await p.locator('.run-status .badge.status-failed').waitFor();
        // Kept as an artifact before any check, so a failure can be looked at.
        await p.screenshot({ path: join(ARTIFACTS, `console-run-${width}x${height}.png`), fullPage: true });
        // Every box in one turn of the page's script: a live update may re-render the run in between calls.
        const layout = await p.evaluate(() => {
          const rect = (el: Element) => {
            const r = el.getBoundingClientRect();
            return { x: r.x, y: r.y, width: r.width, height: r.height };
          };
          const one = (selector: string) => rect(document.querySelector(selector)!);
          return {
            steps: one('table.steps'),
            picture: one('section.picture'),
            events: one('section.events'),
            svg: one('svg.time-axis'),
            cells: [...document.querySelectorAll('table.steps td, table.events td')].map((td) => ({ text: (td.textContent ?? '').slice(0, 60), box: rect(td), table: rect(td.closest('table')!) })),
            labels: [...document.querySelectorAll('svg.time-axis text:not(.lane-label)')].map((t) => ({ text: t.textContent ?? '', box: rect(t) })),
            pageWidth: document.documentElement.scrollWidth,
          };
        });
        const { steps, picture, events, svg } = layout;
        // The steps table stays in its column; neither it nor the picture runs under the timeline.
        expect(inside(steps, picture), `steps table ${JSON.stringify(steps)} overflows its column ${JSON.stringify(picture)}`).toBe(true);
        expect(overlap(steps, events), 'steps table overlaps the timeline').toBe(false);
        expect(overlap(svg, events), 'time axis overlaps the timeline').toBe(false);
        for (const cell of layout.cells) expect(inside(cell.box, cell.table), `a cell spills out of its table: ${cell.text}`).toBe(true);
        expect(layout.pageWidth, 'the page scrolls sideways').toBeLessThanOrEqual(width);
        // The axis' labels (start time, ticks, end marker) neither overlap nor leave the picture.
        expect(layout.labels.length).toBeGreaterThan(2);
        for (const [i, a] of layout.labels.entries()) {
          expect(inside(a.box, svg), `axis label "${a.text}" leaves the picture`).toBe(true);
          for (const b of layout.labels.slice(i + 1)) expect(overlap(a.box, b.box), `axis labels "${a.text}" and "${b.text}" overlap`).toBe(false);
        }
      } finally {
        await sized.close();
      }
    });
  }
});

describe.skipIf(!hasChromium)('local mode in Chromium: the console asks for a name and the server keeps it', () => {
  let localDb: TestDatabase;
  let local: ServerProcess;
  let localDir: string;
  let localBrowser: Browser;

  beforeAll(async () => {
    localDb = await createTestDatabase();
    localDir = await writePlaybooks({
      'local-approve.yaml': `
name: local-approve
triggers:
  - matchers: ['alertname="LocalApprove"']
steps:
  - id: change
    action: note
    impact: high
    with: { text: "changing" }
`,
    });
    local = await startServer({ DATABASE_URL: localDb.url, FIREBREAK_PLAYBOOKS: localDir });
    const { chromium } = await import('playwright-core');
    localBrowser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  });

  afterAll(async () => {
    await localBrowser?.close();
    await local?.stop();
    await localDb?.drop();
    if (localDir) await rm(localDir, { recursive: true, force: true });
  });

  it('asks once, records local:<name> as unverified, and keeps nothing in the browser but the session cookie', async () => {
    const fired = await httpJson('POST', `${local.url}/hooks/generic`, alertBody({ alertname: 'LocalApprove', service: 'x' }));
    const runId: string = fired.body.runs[0];
    const run = await eventually(async () => {
      const r = (await httpJson('GET', `${local.url}/api/runs/${runId}`)).body;
      return r.status === 'waiting' ? r : undefined;
    });
    const ctx = await localBrowser.newContext();
    const p = await ctx.newPage();
    const errors: string[] = [];
    p.on('pageerror', (err) => errors.push(err.message));
    await p.goto(`${local.url}/runs/${runId}`);
    expect(await p.textContent('#whoami')).toBe('nobody yet');
    await p.click(`#approve-${run.approvals[0].id}`);
    await p.locator('#user-dialog').waitFor({ state: 'visible' });
    await p.fill('#user-name', 'alice');
    await p.click('#user-dialog button[value=ok]');
    await p.locator('#flash', { hasText: 'Approved as local:alice.' }).waitFor();
    expect(await p.textContent('#whoami')).toBe('local:alice');
    expect(await p.evaluate(() => localStorage.length)).toBe(0);
    expect((await ctx.cookies()).map((c) => c.name)).toEqual(['firebreak_session']);
    // A reload still knows the name: it lives in the server-side session.
    await p.reload();
    expect(await p.textContent('#whoami')).toBe('local:alice');
    const { rows } = await localDb.pool.query("select actor, data->>'verified' as verified from timeline_events where run_id = $1 and kind = 'approval.granted'", [runId]);
    expect(rows).toEqual([{ actor: 'local:alice', verified: 'false' }]);
    expect(errors).toEqual([]);
    await ctx.close();
  });
});
