/**
 * The postmortem export of a real run, driven through the real server, engine
 * and policy bundle: a step that needs retries, an approval (alice, group sre),
 * a step the policy denies (exec of a script not on the allow-list), and the
 * compensation the deny triggers. Then `audit verify` on a tampered chain.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatDuration } from '../../src/timeline/index.js';
import { advanceDatabaseClock, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { eventually, freePort, httpJson, ROOT, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';
import { alertBody, writePlaybooks } from './fixture.js';

const SECRET = `s3cr3t-${randomBytes(12).toString('hex')}`;
const ALERT_AGE_MS = 42_000;

let db: TestDatabase;
let target: Target;
let server: ServerProcess;
let dir: string;
let runId: string;
let json: any;
let md: string;
let apiRun: any;
let dry: any;
let dryMd: string;
let realRunStartedAt: number;

beforeAll(async () => {
  db = await createTestDatabase();
  target = await startTarget();
  // restart: two 503s, then success (attempts 1 and 2 are retried).
  target.respond('/restart', (_call, n) => (n < 3 ? { status: 503, body: { error: 'busy, try again' } } : { status: 200, body: { restarted: true } }));
  dir = await writePlaybooks({
    'postmortem-demo.yaml': `
name: postmortem-demo
description: Export test with retries, an approval, a denied step and compensation
triggers:
  - matchers: ['alertname="PostmortemDemo"']
steps:
  - id: gather
    action: http.request
    with:
      method: GET
      url: "${target.url}/metrics"
  - id: restart
    action: http.request
    with:
      method: POST
      url: "${target.url}/restart"
      headers:
        Authorization: "Bearer \${{ secrets.DEPLOY_TOKEN }}"
    retry: { attempts: 3, backoff: 150ms }
    compensate:
      action: http.request
      with: { method: POST, url: "${target.url}/undo-restart" }
  - id: rollback
    action: http.request
    impact: high
    with:
      method: POST
      url: "${target.url}/rollback"
      body:
        service: checkout
        token: "\${{ secrets.DEPLOY_TOKEN }}"
    compensate:
      action: http.request
      with:
        method: POST
        url: "${target.url}/roll-forward"
        headers:
          X-Deploy-Token: "\${{ secrets.DEPLOY_TOKEN }}"
  - id: cleanup
    action: exec
    with: { script: wipe-everything.sh }
`,
  });
  server = await startServer({
    DATABASE_URL: db.url,
    FIREBREAK_PLAYBOOKS: dir,
    FIREBREAK_HTTP_ALLOW: target.host,
    FIREBREAK_SECRET_DEPLOY_TOKEN: SECRET,
  });

  // The dry run goes first: the policy's blast-radius rule counts the real run's calls to this host.
  const started = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'postmortem-demo', dryRun: true, user: 'bob' });
  expect(started.status, JSON.stringify(started.body)).toBe(201);
  const dryId = started.body.id;
  const dryWaiting = await eventually(async () => {
    const r = (await httpJson('GET', `${server.url}/api/runs/${dryId}`)).body;
    return r.status === 'waiting' ? r : undefined;
  });
  expect((await httpJson('POST', `${server.url}/api/approvals/${dryWaiting.approvals[0].id}`, { decision: 'approve', user: 'alice' })).status).toBe(200);
  await eventually(async () => (await httpJson('GET', `${server.url}/api/runs/${dryId}`)).body.finishedAt);
  dry = (await httpJson('GET', `${server.url}/api/runs/${dryId}/timeline`)).body;
  dryMd = (await httpJson('GET', `${server.url}/api/runs/${dryId}/timeline?format=md`)).body;

  realRunStartedAt = Date.now();
  const startsAt = new Date(Date.now() - ALERT_AGE_MS).toISOString();
  const fired = await httpJson('POST', `${server.url}/hooks/generic`, alertBody({ alertname: 'PostmortemDemo', service: 'checkout', severity: 'critical' }, { startsAt }));
  expect(fired.status).toBe(202);
  runId = fired.body.runs[0];
  const waiting = await eventually(async () => {
    const r = (await httpJson('GET', `${server.url}/api/runs/${runId}`)).body;
    return r.status === 'waiting' ? r : undefined;
  });
  // Let the approval wait a measurable while (on the database clock, which the timeline follows), then answer as an SRE.
  await advanceDatabaseClock(db.pool, '90 seconds');
  const answer = await httpJson('POST', `${server.url}/api/approvals/${waiting.approvals[0].id}`, { decision: 'approve', user: 'alice' });
  expect(answer.status).toBe(200);
  apiRun = await eventually(async () => {
    const r = (await httpJson('GET', `${server.url}/api/runs/${runId}`)).body;
    return r.finishedAt ? r : undefined;
  });
  json = (await httpJson('GET', `${server.url}/api/runs/${runId}/timeline?format=json`)).body;
  const mdRes = await httpJson('GET', `${server.url}/api/runs/${runId}/timeline?format=md`);
  expect(mdRes.headers['content-type']).toMatch(/^text\/markdown/);
  md = mdRes.body;
  // Kept for people to read (test-artifacts/ is gitignored; CI keeps it).
  await mkdir(join(ROOT, 'test-artifacts'), { recursive: true });
  await writeFile(join(ROOT, 'test-artifacts', 'postmortem-timeline.md'), md);
  await writeFile(join(ROOT, 'test-artifacts', 'postmortem-timeline.json'), JSON.stringify(json, null, 2));
  await writeFile(join(ROOT, 'test-artifacts', 'postmortem-timeline-dry-run.md'), dryMd);
});

afterAll(async () => {
  await server?.stop();
  await target?.close();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const at = (iso: string) => Date.parse(iso);
const eventOf = (kind: string, stepId?: string) => json.events.find((e: any) => e.kind === kind && (stepId === undefined || e.stepId === stepId));

describe('postmortem export of a run with retries, an approval, a deny and compensation', () => {
  it('the run really went that way', () => {
    expect(apiRun.status).toBe('failed');
    expect(target.count('/restart')).toBe(3);
    expect(target.count('/metrics')).toBe(2);
    expect(target.count('/rollback')).toBe(1);
    expect(target.count('/roll-forward')).toBe(1);
    expect(target.count('/undo-restart')).toBe(1);
    // The secret was really used on the wire (so its absence below means something).
    expect(target.calls.find((c) => c.path === '/rollback')!.body).toContain(SECRET);
    // Compensation newest first: rollback before restart.
    const comps = json.events.filter((e: any) => e.kind === 'compensation.started').map((e: any) => e.stepId);
    expect(comps).toEqual(['rollback', 'restart']);
  });

  it('summarises every step with attempts, outcome and why', () => {
    const steps = Object.fromEntries(json.steps.map((s: any) => [s.id, s]));
    expect(steps.gather).toMatchObject({ status: 'succeeded', attempts: 1, category: 'gather' });
    expect(steps.restart).toMatchObject({ status: 'compensated', attempts: 3, compensation: 'succeeded', category: 'mitigation' });
    expect(steps.rollback).toMatchObject({ status: 'compensated', attempts: 1, impact: 'high', compensation: 'succeeded' });
    expect(steps.cleanup).toMatchObject({ status: 'denied', attempts: 0 });
    expect(steps.cleanup.note).toMatch(/wipe-everything\.sh/);
    // restart took from its first attempt to its success, backoff included.
    const firstStart = json.events.find((e: any) => e.kind === 'step.started' && e.stepId === 'restart');
    expect(steps.restart.durationMs).toBe(at(eventOf('step.succeeded', 'restart').time) - at(firstStart.time));
    expect(json.events.filter((e: any) => e.kind === 'step.retrying').map((e: any) => e.why)).toEqual([expect.stringMatching(/503/), expect.stringMatching(/503/)]);
  });

  it('names the approver and the policy reasons', () => {
    expect(json.approvals).toHaveLength(1);
    const a = json.approvals[0];
    expect(a).toMatchObject({ stepId: 'rollback', status: 'approved', decidedBy: 'local:alice', approvers: ['group:sre'] });
    expect(a.reasons.length).toBeGreaterThan(0);
    expect(a.waitMs).toBe(at(a.decidedAt) - at(a.requestedAt));
    expect(a.waitMs).toBeGreaterThanOrEqual(90_000);
    const denied = eventOf('step.denied', 'cleanup');
    expect(denied.actor).toBe('policy');
    expect(denied.why).toMatch(/wipe-everything\.sh/);
    expect(eventOf('approval.granted').actor).toBe('local:alice');
    expect(json.run.reason).toMatch(/policy denied step cleanup/);
  });

  it('computes the durations from the chain', () => {
    const origin = at(json.run.alert.startsAt);
    expect(json.origin).toEqual({ kind: 'alert', time: new Date(origin).toISOString() });
    const d = json.durations;
    const firstStarted = json.events.find((e: any) => e.kind === 'step.started');
    expect(firstStarted.stepId).toBe('gather');
    expect(d.alertToFirstActionMs).toBe(at(firstStarted.time) - origin);
    expect(d.alertToFirstActionMs).toBeGreaterThanOrEqual(ALERT_AGE_MS);
    expect(d.firstAction).toEqual({ stepId: 'gather', at: firstStarted.time });
    // Mitigation is the high-impact step, not the low-impact POST before it.
    expect(d.mitigation).toMatchObject({ stepId: 'rollback', simulated: false });
    expect(d.alertToMitigationMs).toBe(at(eventOf('step.succeeded', 'rollback').time) - origin);
    expect(d.approvalWaitMs).toBe(at(eventOf('approval.granted').time) - at(eventOf('approval.requested').time));
    expect(d.totalMs).toBe(at(apiRun.finishedAt) - at(apiRun.createdAt));
    expect(d.alertToFinishMs).toBe(at(apiRun.finishedAt) - origin);
    for (const e of json.events) expect(e.offsetMs).toBe(at(e.time) - origin);
  });

  it('keeps secrets out of JSON and Markdown', () => {
    expect(JSON.stringify(json)).not.toContain(SECRET);
    expect(md).not.toContain(SECRET);
    const started = eventOf('step.started', 'restart');
    expect(started.data.params.headers.Authorization).toBe('Bearer [redacted]');
  });

  it('renders Markdown that pastes into a postmortem doc', () => {
    expect(md).toMatch(/^# Timeline: postmortem-demo run `[0-9a-f]{8}`\n/);
    expect(md).not.toMatch(/DRY RUN/);
    expect(md).toContain(`| Alert → first action | ${formatDuration(json.durations.alertToFirstActionMs)} |`);
    expect(md).toContain(`| Alert → mitigation | ${formatDuration(json.durations.alertToMitigationMs)} |`);
    expect(md).toContain(`| Waiting for approvals | ${formatDuration(json.durations.approvalWaitMs)} |`);
    expect(md).toContain(`| Run total | ${formatDuration(json.durations.totalMs)} |`);
    expect(md).toMatch(/\| `rollback` \| .* \| approved at .* \| local:alice \|/);
    expect(md).toMatch(/\| `restart` \| `http\.request` \| low \| compensated \| 3 \|/);
    expect(md).toMatch(/\| `cleanup` \| `exec` \| low \| \*\*denied\*\* \| 0 \|/);
    expect(md).toContain('DENIED by policy');
    expect(md).toContain(`firebreak audit verify ${runId}`);
    // Every table is well-formed: each row has as many cells as its header.
    const blocks = md.split('\n\n').filter((b) => b.startsWith('|'));
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    for (const block of blocks) {
      const rows = block.split('\n');
      const cells = (row: string) => row.replace(/\\\|/g, '').split('|').length;
      expect(rows[1]).toMatch(/^\|(---\|)+$/);
      for (const row of rows) expect(cells(row), row).toBe(cells(rows[0]!));
    }
    // Every event is a row: T+ relative hints from the alert.
    // A run that crosses midnight (UTC) prints the date in front of each time.
    expect(md.match(/^\| (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d\.\d{3} \| T\+/gm)?.length).toBe(json.events.length);
    expect(md).not.toMatch(/<[a-z]/i);
  });

  it('firebreak timeline prints the same, from the server or straight from the database', async () => {
    const viaServer = await runCli(['timeline', runId, '--format', 'md'], { FIREBREAK_URL: server.url });
    expect(viaServer.code).toBe(0);
    expect(viaServer.stdout.trimEnd()).toBe(md.trimEnd());
    const closed = `http://127.0.0.1:${await freePort()}`;
    const viaDb = await runCli(['timeline', runId, '--format', 'json'], { FIREBREAK_URL: closed, DATABASE_URL: db.url });
    expect(viaDb.code, viaDb.stderr).toBe(0);
    const parsed = JSON.parse(viaDb.stdout);
    expect(parsed.durations).toEqual(json.durations);
    expect(viaDb.stdout).not.toContain(SECRET);
  });
});

describe('dry run export', () => {
  it('is marked as a dry run everywhere, with the would-be calls and simulated durations', () => {
    // Gather ran for real (once per run); nothing that changes anything was sent by the dry run.
    expect(target.count('/metrics')).toBe(2);
    expect(target.calls.filter((c) => c.path !== '/metrics' && c.at < realRunStartedAt)).toEqual([]);

    expect(dry.run).toMatchObject({ dryRun: true, trigger: 'manual', startedBy: 'local:bob', status: 'failed' });
    expect(dry.origin).toEqual({ kind: 'run', time: dry.run.createdAt });
    expect(dry.durations.mitigation).toMatchObject({ stepId: 'rollback', simulated: true });
    expect(dry.approvals[0]).toMatchObject({ status: 'approved', decidedBy: 'local:alice' });
    expect(dryMd).toMatch(/^# Timeline: postmortem-demo run `[0-9a-f]{8}` — DRY RUN\n/);
    expect(dryMd).toContain('> **DRY RUN — nothing was changed.**');
    expect(dryMd).toContain(`| Run | \`${dry.run.id}\` (dry run) |`);
    expect(dryMd).toContain('| Run created → mitigation (simulated) |');
    expect(dryMd).toContain(`DRY RUN: step restart would call POST ${target.url}/restart`);
    expect(dryMd).toContain(`DRY RUN: step rollback would call POST ${target.url}/rollback`);
    expect(dryMd).toContain('since the run was created (no alert)');
    expect(JSON.stringify(dry)).not.toContain(SECRET);
    expect(dryMd).not.toContain(SECRET);
  });
});

describe('audit verify', () => {
  it('passes on the untouched chain, then finds and names a tampered event', async () => {
    const ok = await runCli(['audit', 'verify', runId], { DATABASE_URL: db.url });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/audit ok: 1 chain\(s\)/);

    const denied = eventOf('step.denied', 'cleanup');
    // A superuser can switch the append-only trigger off; the hashes still give it away.
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await expect(admin.query(`update timeline_events set actor = 'someone' where chain_id = $1`, [runId])).rejects.toThrow(/append-only/);
      await admin.query('alter table timeline_events disable trigger user');
      await admin.query(`update timeline_events set data = jsonb_set(data, '{reasons}', '["allowed after all"]') where chain_id = $1 and seq = $2`, [runId, denied.seq]);
      await admin.query('alter table timeline_events enable trigger user');
    } finally {
      await admin.end();
    }

    const one = await runCli(['audit', 'verify', runId], { DATABASE_URL: db.url });
    expect(one.code).toBe(1);
    expect(one.stdout).toContain(`BROKEN chain ${runId}: first broken event seq ${denied.seq}`);
    expect(one.stdout).toContain('kind step.denied');
    expect(one.stdout).toMatch(/altered/);
    expect(one.stderr).toMatch(/audit FAILED: 1 broken chain/);

    const all = await runCli(['audit', 'verify'], { DATABASE_URL: db.url });
    expect(all.code).toBe(1);
    expect(all.stdout).toContain(`seq ${denied.seq}`);
  });
});
