/**
 * The console in a real browser: playwright-core driving Debian's Chromium
 * against the real server. Log in, see a waiting run, approve it (asked for
 * a name once), watch it finish through live updates, look at the run's
 * picture; a refused answer, an approval from another channel arriving live,
 * and an abort from the keyboard. Screenshots go to test-artifacts/.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertBody, writePlaybooks } from '../timeline/fixture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { eventually, httpJson, ROOT, startServer, type ServerProcess } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';

const CHROMIUM = process.env.FIREBREAK_CHROMIUM ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`test/console/browser.test.ts skipped: no Chromium at ${CHROMIUM} (install the "chromium" package, or set FIREBREAK_CHROMIUM)`);

const TOKEN = `browser-token-${Math.random().toString(36).slice(2)}`;
const BEARER = { authorization: `Bearer ${TOKEN}` };
const ARTIFACTS = join(ROOT, 'test-artifacts');
const LONG_PATH = '/deployments/checkout-payments-gateway-eu-west-1-canary-2026-05-14T09:12:30.123Z/history-with-a-deliberately-long-path';

let db: TestDatabase;
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
    server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_HTTP_ALLOW: target.host, FIREBREAK_API_TOKEN: TOKEN });
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
    await target?.close();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('logs in, shows the waiting run, approves it and watches it finish', async () => {
    const { runId, approvalId } = await waitingRun('CheckoutErrors');

    await page.goto(server.url);
    await page.waitForURL(/\/login\?next=/);
    await page.fill('#token', TOKEN);
    await page.click('button[type=submit]');
    await page.waitForURL(`${server.url}/`);
    const session = (await context.cookies()).find((c) => c.name === 'firebreak_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(session!.value).not.toContain(TOKEN);

    const row = page.locator(`tr.run-row[data-run="${runId}"]`);
    await expect.poll(() => row.getAttribute('data-status')).toBe('waiting');
    await page.locator('#live-status', { hasText: 'live' }).waitFor();
    const approve = page.locator(`#approve-${approvalId}`);
    await approve.waitFor();
    expect(await page.locator(`#approvals article`).first().textContent()).toContain('group:sre');
    expect(await page.locator('time').first().textContent()).toMatch(/UTC$/);
    await page.screenshot({ path: join(ARTIFACTS, 'console-runs-waiting.png'), fullPage: true });

    // First answer: the console asks who we are, once.
    await approve.click();
    const dialog = page.locator('#user-dialog');
    await dialog.waitFor({ state: 'visible' });
    await page.fill('#user-name', 'alice');
    await page.click('#user-dialog button[value=ok]');
    await page.locator('#flash', { hasText: 'Approved as console:alice.' }).waitFor();
    expect(await page.evaluate(() => localStorage.getItem('firebreak.user'))).toBe('alice');
    expect(await page.textContent('#whoami')).toBe('console:alice');

    // No reload: the server-sent event brings the change.
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
    await expect.poll(() => row.getAttribute('data-status'), { timeout: 20_000 }).toBe('succeeded');
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
    expect(await page.locator(`#approve-${approvalId}`).count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, 'console-runs-finished.png'), fullPage: true });

    const run = (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, BEARER)).body;
    expect(run.approvals[0]).toMatchObject({ status: 'approved', decidedBy: 'console:alice' });
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
    expect(await svg.locator('g.span.approval title').textContent()).toMatch(/approved by console:alice/);
    const events = page.locator('table.events tbody tr');
    expect(await events.count()).toBeGreaterThan(10);
    expect(await page.locator('table.events').textContent()).toContain('step rollback approved by console:alice');
    expect(await page.locator('.durations').textContent()).toMatch(/Alert → first action/);
    await page.screenshot({ path: join(ARTIFACTS, 'console-run.png'), fullPage: true });
  });

  it('shows a refused answer, then an approval from another channel arrives live', async () => {
    const { runId, approvalId } = await waitingRun('CheckoutLatency');
    await page.goto(`${server.url}/runs/${runId}`);
    await page.locator('#live-status', { hasText: 'live' }).waitFor();
    // carol is on-call, not SRE: the approve policy says no, and the page says why.
    await page.click('#change-user');
    await page.fill('#user-name', 'carol');
    await page.click('#user-dialog button[value=ok]');
    await page.click(`#approve-${approvalId}`);
    await page.locator('#flash.error', { hasText: 'Not allowed' }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'console-run-waiting.png'), fullPage: true });

    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 7));
    const answer = await httpJson('POST', `${server.url}/api/approvals/${approvalId}`, { decision: 'approve', user: 'bob' }, BEARER);
    expect(answer.status).toBe(200);
    await page.locator('.run-status .badge.status-succeeded').waitFor({ timeout: 20_000 });
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(7);
    expect(await page.locator('table.events').textContent()).toContain('console:carol may not approve step rollback');
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
