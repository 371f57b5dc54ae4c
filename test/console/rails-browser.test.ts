/**
 * The safety rails in the console, in a real browser (playwright-core driving
 * Debian's Chromium against the real server): sign in with a personal token,
 * see each alert's outcome on the Alerts page, a failed run under "Needs
 * attention", pause all automation from the header (a banner on every page
 * says who, when and why), resume from the banner, and add and expire a
 * silence on the Silences page. Screenshots go to test-artifacts/.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, ROOT, runCli, startServer, type ServerProcess } from '../helpers/server.js';

const CHROMIUM = process.env.FIREBREAK_CHROMIUM ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const ARTIFACTS = join(ROOT, 'test-artifacts');
const AUDIT_KEY = 'cd'.repeat(32);

let db: TestDatabase;
let dir: string;
let server: ServerProcess;
let browser: Browser;
let page: Page;
let alice = '';
const pageErrors: string[] = [];

async function fire(labels: Record<string, string>) {
  const res = await httpJson('POST', `${server.url}/hooks/generic`, { labels, annotations: { summary: `${labels.alertname} on ${labels.service}` }, startsAt: new Date().toISOString() });
  expect(res.status).toBe(202);
  return res.body as { startedRuns: string[] };
}

/** Answer the next window.prompt with `text` (the console asks for a reason). */
function answerPrompt(text: string): void {
  page.once('dialog', (dialog) => void dialog.accept(text));
}

describe.skipIf(!hasChromium)(`safety rails in the console (${CHROMIUM})`, () => {
  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    db = await createTestDatabase();
    dir = await playbooksDir(
      {
        'storm.yaml': `
name: storm
triggers:
  - matchers: ['alertname="Storm"']
limits:
  max_runs: 1
  per: 1h
steps:
  - id: note
    action: note
    with: { text: "storm" }
`,
        'broken.yaml': `
name: broken
triggers:
  - matchers: ['alertname="Broken"']
steps:
  - id: restart
    action: exec
    retry: { attempts: 1 }
    with: { script: fail.sh }
`,
      },
      { 'fail.sh': '#!/bin/sh\necho "restart refused: queue unreachable" >&2\nexit 1\n' },
    );
    server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_AUDIT_KEY: AUDIT_KEY, FIREBREAK_API_TOKEN: `svc-${Math.random().toString(36).slice(2)}` });
    const created = await runCli(['token', 'create', 'alice'], { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: AUDIT_KEY });
    expect(created.code, created.stderr).toBe(0);
    alice = created.stdout.trim();
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox'] });
    page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${server.url}/alerts`);
    await page.waitForURL(/\/login\?next=/);
    await page.fill('#token', alice);
    await page.click('form.login-form button[type=submit]');
    await page.waitForURL(`${server.url}/alerts`);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('shows what became of each alert, and a failed run under "needs attention"', async () => {
    expect((await fire({ alertname: 'Storm', service: 'checkout', instance: 'a' })).startedRuns).toHaveLength(1);
    expect((await fire({ alertname: 'Storm', service: 'checkout', instance: 'b' })).startedRuns).toHaveLength(0);
    await fire({ alertname: 'Unmatched', service: 'search' });
    await page.goto(`${server.url}/alerts`);
    await expect.poll(() => page.locator('.outcome-started').count()).toBe(1);
    expect(await page.locator('.outcome-throttled').count()).toBe(1);
    expect(await page.locator('.outcome-no_match').count()).toBe(1);
    expect(await page.locator('tr.alert-row', { hasText: 'throttled' }).innerText()).toMatch(/1 run of this playbook started in the last 1h \(limits\.max_runs 1\)/);
    await page.screenshot({ path: join(ARTIFACTS, 'rails-alerts.png'), fullPage: true });

    const broken = (await fire({ alertname: 'Broken', service: 'queue' })).startedRuns[0]!;
    await eventually(async () => (await httpJson('GET', `${server.url}/api/runs/${broken}`, undefined, { authorization: `Bearer ${alice}` })).body.status === 'failed');
    await page.goto(`${server.url}/`);
    const attention = page.locator('#attention');
    await expect.poll(() => attention.isVisible()).toBe(true);
    expect(await attention.locator(`li[data-run="${broken}"]`).innerText()).toMatch(/restart/);
  });

  it('pauses all automation from the header: a banner on every page says who, when and why; resume from the banner', async () => {
    await page.goto(`${server.url}/`);
    answerPrompt('bad deploy, hands off');
    await Promise.all([page.waitForEvent('load'), page.click('#pause-all')]);
    const banner = page.locator('#pause-banner');
    await expect.poll(() => banner.isVisible()).toBe(true);
    expect(await banner.innerText()).toMatch(/All automation is PAUSED[\s\S]*paused by token:alice at .* UTC: bad deploy, hands off/);
    for (const path of ['/alerts', '/silences', `/runs/${(await httpJson('GET', `${server.url}/api/runs?limit=1`, undefined, { authorization: `Bearer ${alice}` })).body.items[0].id}`]) {
      await page.goto(`${server.url}${path}`);
      expect(await page.locator('#pause-banner').innerText(), path).toContain('bad deploy, hands off');
    }
    await page.screenshot({ path: join(ARTIFACTS, 'rails-paused.png'), fullPage: true });
    // While paused, alerts are held, and the Alerts page says so.
    await fire({ alertname: 'Storm', service: 'payments', instance: 'c' });
    await page.goto(`${server.url}/alerts`);
    expect(await page.locator('tr.alert-row', { hasText: 'payments' }).innerText()).toMatch(/paused[\s\S]*all automation is paused by token:alice/);

    answerPrompt('rolled back');
    await Promise.all([page.waitForEvent('load'), page.click('#pause-banner button.resume')]);
    await expect.poll(() => page.locator('#pause-banner').count()).toBe(0);
    expect((await httpJson('GET', `${server.url}/api/automation`, undefined, { authorization: `Bearer ${alice}` })).body.paused).toBe(false);
  });

  it('pauses and resumes one playbook from the Automation page', async () => {
    await page.goto(`${server.url}/automation`);
    const row = page.locator('tr[data-playbook="storm"]');
    expect(await row.innerText()).toMatch(/running[\s\S]*at most 1 run per 1h/);
    answerPrompt('storm of pages, investigating');
    await Promise.all([page.waitForEvent('load'), row.locator('button[data-action="pause"]').click()]);
    await expect.poll(async () => page.locator('tr[data-playbook="storm"]').innerText()).toMatch(/paused[\s\S]*paused by token:alice[\s\S]*storm of pages, investigating/);
    expect(await page.locator('#pause-banner').innerText()).toMatch(/Automation is paused for one playbook[\s\S]*Playbook storm paused by token:alice/);
    expect((await httpJson('GET', `${server.url}/api/automation`, undefined, { authorization: `Bearer ${alice}` })).body).toMatchObject({ paused: false });
    await page.screenshot({ path: join(ARTIFACTS, 'rails-automation.png'), fullPage: true });

    answerPrompt('');
    await Promise.all([page.waitForEvent('load'), page.locator('tr[data-playbook="storm"] button[data-action="resume"]').click()]);
    await expect.poll(async () => page.locator('tr[data-playbook="storm"]').innerText()).toMatch(/running/);
    expect(await page.locator('#pause-banner').count()).toBe(0);
  });

  it('adds a silence from the Silences page and expires it', async () => {
    await page.goto(`${server.url}/silences`);
    await page.fill('#silence-matchers', 'service="checkout"');
    await page.fill('#silence-duration', '2h');
    await page.fill('#silence-reason', 'database maintenance');
    await page.click('#silence-form button[type=submit]');
    const row = page.locator('#live', { hasText: 'database maintenance' });
    await expect.poll(() => row.count()).toBe(1);
    expect(await page.locator('#live').innerText()).toContain('service="checkout"');
    await page.screenshot({ path: join(ARTIFACTS, 'rails-silences.png'), fullPage: true });
    const listed = (await httpJson('GET', `${server.url}/api/silences`, undefined, { authorization: `Bearer ${alice}` })).body.items;
    expect(listed).toEqual([expect.objectContaining({ createdBy: 'token:alice', reason: 'database maintenance', matchers: ['service="checkout"'] })]);

    answerPrompt('maintenance finished');
    await page.click(`button[data-action="expire-silence"][data-silence="${listed[0].id}"]`);
    await expect.poll(async () => (await httpJson('GET', `${server.url}/api/silences`, undefined, { authorization: `Bearer ${alice}` })).body.items.length).toBe(0);
    expect(pageErrors).toEqual([]);
  });
});
