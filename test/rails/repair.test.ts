/**
 * Stuck runs and repairs (docs/safety-rails.md): a run that stops making
 * progress is listed by GET /api/runs?stuck=true, counted by the
 * firebreak_runs_stuck gauge and gets ONE `run.stuck` event (two replicas
 * watching); operators retry a failed run from the step that failed (a step
 * that succeeded is not called again), or from an earlier step (called again
 * with a new attempt and key), and cancel an active run without compensation.
 * Every repair is authorized (`run.retry`, `run.cancel`: SRE only in the
 * sample policy) and recorded on the run's chain and the automation chain.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writePlaybooks } from '../timeline/fixture.js';
import { testAuditKey } from '../helpers/audit.js';
import { advanceDatabaseClock, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';

const API_TOKEN = `svc-${Math.random().toString(36).slice(2)}`;
const SERVICE = { authorization: `Bearer ${API_TOKEN}` };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const audit = testAuditKey();

let target: Target;
let dir: string;
/** Retries and cancels: a server with workers. */
let db: TestDatabase;
let server: ServerProcess;
/** Stuck runs: a worker that dies mid-step, then two API-only replicas watching. */
let stuckDb: TestDatabase;
let replicas: ServerProcess[] = [];
const tokens: Record<string, string> = {};
const stuckTokens: Record<string, string> = {};

const playbooks = (t: string) => ({
  'repair-flow.yaml': `
name: repair-flow
triggers:
  - matchers: ['alertname="RepairFlow"']
steps:
  - { id: gather, action: http.request, with: { method: GET, url: "${t}/\${{ run.params.case }}/gather" } }
  - { id: mitigate, action: http.request, with: { method: POST, url: "${t}/\${{ run.params.case }}/mitigate" } }
  - { id: verify, action: note, with: { text: "verified" } }
`,
  'approve-flow.yaml': `
name: approve-flow
triggers:
  - matchers: ['alertname="ApproveFlow"']
steps:
  - { id: rollback, action: http.request, approval: required, with: { method: POST, url: "${t}/\${{ run.params.case }}/rollback" } }
`,
  'slow-flow.yaml': `
name: slow-flow
triggers:
  - matchers: ['alertname="SlowFlow"']
steps:
  - { id: hang, action: http.request, with: { method: POST, url: "${t}/\${{ run.params.case }}/hang" } }
  - { id: after, action: http.request, with: { method: POST, url: "${t}/\${{ run.params.case }}/after" } }
`,
});

async function createToken(database: TestDatabase, user: string): Promise<string> {
  const res = await runCli(['token', 'create', user], { DATABASE_URL: database.url, FIREBREAK_AUDIT_KEY: audit.hex });
  expect(res.code, res.stderr).toBe(0);
  return res.stdout.trim();
}

const common = (database: TestDatabase) => ({
  DATABASE_URL: database.url,
  FIREBREAK_PLAYBOOKS: dir,
  FIREBREAK_API_TOKEN: API_TOKEN,
  FIREBREAK_AUDIT_KEY: audit.hex,
  FIREBREAK_HTTP_ALLOW: target.host,
});

beforeAll(async () => {
  target = await startTarget();
  dir = await writePlaybooks(playbooks(target.url));
  [db, stuckDb] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  server = await startServer({ ...common(db), FIREBREAK_WORKERS: '2' });
  for (const user of ['alice', 'carol']) tokens[user] = await createToken(db, user);
  for (const user of ['alice', 'carol']) stuckTokens[user] = await createToken(stuckDb, user);
});

afterAll(async () => {
  await Promise.all([server?.stop(), ...replicas.map((r) => r.stop())]);
  await target?.close();
  await Promise.all([db?.drop(), stuckDb?.drop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function start(on: ServerProcess, playbook: string, kase: string): Promise<string> {
  const res = await httpJson('POST', `${on.url}/api/runs`, { playbook, params: { case: kase } }, SERVICE);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

async function runIn(on: ServerProcess, id: string, statuses: string[]): Promise<any> {
  return eventually(async () => {
    const r = (await httpJson('GET', `${on.url}/api/runs/${id}`, undefined, SERVICE)).body;
    return statuses.includes(r.status) ? r : undefined;
  });
}

async function chain(database: TestDatabase, chainId: string) {
  return (await database.pool.query('select kind, actor, data from timeline_events where chain_id = $1 order by seq', [chainId])).rows;
}

const stepStatuses = (run: any) => Object.fromEntries(run.steps.map((s: any) => [s.id, `${s.status}/${s.attempts}`]));

describe('retry', () => {
  it('a failed run continues from the failed step; the step that succeeded is not called again (HTTP)', async () => {
    target.respond('/http-retry/mitigate', (_c, n) => (n === 1 ? { status: 500, body: { error: 'boom' } } : { status: 200, body: { ok: true } }));
    const id = await start(server, 'repair-flow', 'http-retry');
    const failed = await runIn(server, id, ['failed']);
    expect(stepStatuses(failed)).toEqual({ gather: 'succeeded/1', mitigate: 'failed/1', verify: 'skipped/0' });

    // on-call is not SRE: the sample policy refuses, and says so on the run's chain.
    const refused = await httpJson('POST', `${server.url}/api/runs/${id}/retry`, { reason: 'try again' }, bearer(tokens.carol!));
    expect(refused.status, JSON.stringify(refused.body)).toBe(403);

    const res = await httpJson('POST', `${server.url}/api/runs/${id}/retry`, { reason: 'deploy API back' }, bearer(tokens.alice!));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.retried).toEqual({ fromStep: 'mitigate', retry: 1, previousStatus: 'failed' });
    expect(['queued', 'running', 'succeeded']).toContain(res.body.status);
    expect(res.body.finishedAt === null || res.body.status === 'succeeded').toBe(true);

    const done = await runIn(server, id, ['succeeded', 'failed']);
    expect(done.status).toBe('succeeded');
    expect(done.retries).toBe(1);
    expect(done.outcome).toMatchObject({ reason: 'all steps done' });
    expect(stepStatuses(done)).toEqual({ gather: 'succeeded/1', mitigate: 'succeeded/2', verify: 'succeeded/1' });
    expect(target.count('/http-retry/gather')).toBe(1);
    const mitigations = target.calls.filter((c) => c.path === '/http-retry/mitigate').map((c) => c.headers['idempotency-key']);
    expect(mitigations).toEqual([`${id}:mitigate:1`, `${id}:mitigate:2`]);

    const events = await chain(db, id);
    expect(events.filter((e) => (e.kind === 'access.denied' || e.kind === 'access.allowed') && e.data.action === 'run.retry').map((e) => [e.kind, e.actor, e.data.action])).toEqual([
      ['access.denied', 'token:carol', 'run.retry'],
      ['access.allowed', 'token:alice', 'run.retry'],
    ]);
    const retried = events.find((e) => e.kind === 'run.retried');
    expect(retried).toMatchObject({ actor: 'token:alice', data: { fromStep: 'mitigate', reason: 'deploy API back', previousStatus: 'failed', retry: 1 } });
    // Events in order: failed, retried, the new attempt, success.
    const kinds = events.map((e) => e.kind);
    expect(kinds.indexOf('run.failed')).toBeLessThan(kinds.indexOf('run.retried'));
    expect(kinds.lastIndexOf('run.succeeded')).toBeGreaterThan(kinds.indexOf('run.retried'));
    expect(events.filter((e) => e.kind === 'step.started' && e.data.stepId === 'gather')).toHaveLength(1);

    const automation = await chain(db, 'automation');
    expect(automation.find((e) => e.kind === 'repair.retried' && e.data.runId === id)).toMatchObject({
      actor: 'token:alice',
      data: { runId: id, playbook: 'repair-flow', fromStep: 'mitigate', reason: 'deploy API back', previousStatus: 'failed' },
    });

    // The timeline (API) reads the run as it is now: succeeded, not failed.
    const timeline = await httpJson('GET', `${server.url}/api/runs/${id}/timeline`, undefined, SERVICE);
    expect(timeline.status).toBe(200);
    expect(JSON.stringify(timeline.body)).toContain('retried from mitigate');

    // Nothing left to retry: 409.
    const again = await httpJson('POST', `${server.url}/api/runs/${id}/retry`, {}, bearer(tokens.alice!));
    expect(again.status).toBe(409);
  });

  it('--from an earlier step (CLI) calls it again with a new attempt; an unknown step is 400', async () => {
    target.respond('/cli-retry/mitigate', (_c, n) => (n === 1 ? { status: 503 } : { status: 200 }));
    const id = await start(server, 'repair-flow', 'cli-retry');
    await runIn(server, id, ['failed']);

    const unknown = await httpJson('POST', `${server.url}/api/runs/${id}/retry`, { from: 'nope' }, bearer(tokens.alice!));
    expect(unknown.status).toBe(400);
    expect(unknown.body.details[0].path).toBe('from');
    const later = await httpJson('POST', `${server.url}/api/runs/${id}/retry`, { from: 'verify' }, bearer(tokens.alice!));
    expect(later.status).toBe(400);

    const cli = await runCli(['retry', id, '--from', 'gather', '--reason', 'stale numbers'], { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: tokens.alice! });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain('continues from step gather');

    const done = await runIn(server, id, ['succeeded', 'failed']);
    expect(done.status).toBe('succeeded');
    expect(stepStatuses(done)).toEqual({ gather: 'succeeded/2', mitigate: 'succeeded/2', verify: 'succeeded/1' });
    expect(target.calls.filter((c) => c.path === '/cli-retry/gather').map((c) => c.headers['idempotency-key'])).toEqual([`${id}:gather:1`, `${id}:gather:2`]);
    const retried = (await chain(db, id)).find((e) => e.kind === 'run.retried');
    expect(retried).toMatchObject({ actor: 'token:alice', data: { fromStep: 'gather', reason: 'stale numbers' } });

    const refused = await runCli(['retry', id], { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: tokens.carol! });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('403');
  });

  it('a run aborted by a rejected approval asks again after a retry: an answer given before it decides nothing', async () => {
    const id = await start(server, 'approve-flow', 'approval-retry');
    const waiting = await runIn(server, id, ['waiting']);
    const first = waiting.approvals[0].id;
    const rejected = await httpJson('POST', `${server.url}/api/approvals/${first}`, { decision: 'reject' }, bearer(tokens.alice!));
    expect(rejected.status, JSON.stringify(rejected.body)).toBe(200);
    await runIn(server, id, ['aborted']);

    const res = await httpJson('POST', `${server.url}/api/runs/${id}/retry`, { reason: 'rollback is safe now' }, bearer(tokens.alice!));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.retried).toEqual({ fromStep: 'rollback', retry: 1, previousStatus: 'aborted' });
    const again = await eventually(async () => {
      const r = await runIn(server, id, ['waiting', 'aborted', 'succeeded']);
      return r.approvals.length === 2 ? r : undefined;
    });
    expect(again.status).toBe('waiting');
    expect(again.approvals.map((a: any) => [a.stepId, a.round, a.status])).toEqual([
      ['rollback', 1, 'rejected'],
      ['rollback', 1, 'pending'],
    ]);
    expect(target.count('/approval-retry/rollback')).toBe(0);
    const approved = await httpJson('POST', `${server.url}/api/approvals/${again.approvals[1].id}`, { decision: 'approve' }, bearer(tokens.alice!));
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);
    expect((await runIn(server, id, ['succeeded', 'failed', 'aborted'])).status).toBe('succeeded');
    expect(target.count('/approval-retry/rollback')).toBe(1);
  });
});

describe('cancel', () => {
  it('a running run cannot be retried (409); cancel ends it now without compensation, and its worker writes nothing after', async () => {
    const release = target.hold('/http-cancel/hang');
    try {
      const id = await start(server, 'slow-flow', 'http-cancel');
      await eventually(async () => target.count('/http-cancel/hang') === 1);
      const running = await runIn(server, id, ['running']);
      expect(running.steps[0].status).toBe('running');

      const retry = await httpJson('POST', `${server.url}/api/runs/${id}/retry`, {}, bearer(tokens.alice!));
      expect(retry.status).toBe(409);
      const refused = await httpJson('POST', `${server.url}/api/runs/${id}/cancel`, { reason: 'no' }, bearer(tokens.carol!));
      expect(refused.status).toBe(403);

      const res = await httpJson('POST', `${server.url}/api/runs/${id}/cancel`, { reason: 'hung on the deploy API' }, bearer(tokens.alice!));
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.status).toBe('cancelled');
      expect(res.body.cancelled).toEqual({ previousStatus: 'running' });
      expect(stepStatuses(res.body)).toEqual({ hang: 'failed/1', after: 'skipped/0' });
      expect(res.body.finishedAt).not.toBeNull();

      const again = await httpJson('POST', `${server.url}/api/runs/${id}/cancel`, {}, bearer(tokens.alice!));
      expect(again.status).toBe(409);

      // The worker that held it gets its answer late: nothing more is written, nothing else is called.
      release();
      await new Promise((r) => setTimeout(r, 1_500));
      const after = await runIn(server, id, ['cancelled']);
      expect(stepStatuses(after)).toEqual({ hang: 'failed/1', after: 'skipped/0' });
      expect(target.count('/http-cancel/after')).toBe(0);
      const events = await chain(db, id);
      // The last event about the run itself (the refused second cancel only adds its access decision).
      expect(events.filter((e) => !e.kind.startsWith('access.')).at(-1)).toMatchObject({ kind: 'run.cancelled', actor: 'token:alice', data: { reason: 'hung on the deploy API' } });
      expect(events.some((e) => e.kind.startsWith('compensation.'))).toBe(false);
      const automation = await chain(db, 'automation');
      expect(automation.find((e) => e.kind === 'repair.cancelled' && e.data.runId === id)).toMatchObject({
        actor: 'token:alice',
        data: { runId: id, playbook: 'slow-flow', reason: 'hung on the deploy API', previousStatus: 'running' },
      });
    } finally {
      release();
    }
  });

  it('through the CLI; a cancelled run can then be retried from the step that was cut short', async () => {
    const release = target.hold('/cli-cancel/hang');
    let id = '';
    try {
      id = await start(server, 'slow-flow', 'cli-cancel');
      await eventually(async () => target.count('/cli-cancel/hang') === 1);
      const cli = await runCli(['cancel', id, '--reason', 'operator'], { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: tokens.alice! });
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stdout).toContain('cancelled: run');
    } finally {
      release();
    }
    const res = await httpJson('POST', `${server.url}/api/runs/${id}/retry`, { reason: 'API is back' }, bearer(tokens.alice!));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.retried).toMatchObject({ fromStep: 'hang', previousStatus: 'cancelled' });
    const done = await runIn(server, id, ['succeeded', 'failed']);
    expect(done.status).toBe('succeeded');
    expect(target.calls.filter((c) => c.path === '/cli-cancel/hang').map((c) => c.headers['idempotency-key'])).toEqual([`${id}:hang:1`, `${id}:hang:2`]);
  });

  it('`firebreak audit verify` passes after the repairs', async () => {
    const res = await runCli(['audit', 'verify'], { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: audit.hex });
    expect(res.code, res.stdout + res.stderr).toBe(0);
  });
});

describe('stuck runs', () => {
  it('a run whose worker died mid-step is listed, counted and reported once with two replicas watching', async () => {
    const release = target.hold('/stuck/hang');
    try {
      // A worker starts the step, then dies (SIGKILL): nobody else drives the run (the replicas have no workers).
      const worker = await startServer({ ...common(stuckDb), FIREBREAK_LEASE_MS: '2000' });
      replicas.push(worker);
      const id = await start(worker, 'slow-flow', 'stuck');
      await eventually(async () => target.count('/stuck/hang') === 1);
      await worker.stop('SIGKILL');
      replicas = await Promise.all([0, 1].map(() => startServer({ ...common(stuckDb), FIREBREAK_WORKERS: '0', FIREBREAK_LEASE_MS: '2000' })));
      const [a, b] = replicas as [ServerProcess, ServerProcess];

      // Not yet: the step may take its default timeout (10 min) plus the lease.
      expect((await httpJson('GET', `${a.url}/api/runs?stuck=true`, undefined, SERVICE)).body.items).toEqual([]);
      await advanceDatabaseClock(stuckDb.pool, '11 minutes');

      const listed = await httpJson('GET', `${a.url}/api/runs?stuck=true`, undefined, SERVICE);
      expect(listed.status).toBe(200);
      expect(listed.body.items).toHaveLength(1);
      expect(listed.body.items[0]).toMatchObject({ id, playbook: 'slow-flow', status: 'running', stuck: { stepId: 'hang', thresholdMs: 600_000 + 2_000 } });
      expect(Date.parse(listed.body.items[0].stuck.since)).toBeGreaterThan(0);
      const cliList = await runCli(['runs', '--stuck'], { FIREBREAK_URL: b.url, FIREBREAK_API_TOKEN: API_TOKEN });
      expect(cliList.code, cliList.stderr).toBe(0);
      expect(cliList.stdout).toContain(id);

      const metrics = await httpJson('GET', `${b.url}/metrics`);
      expect(metrics.body).toMatch(/^firebreak_runs_stuck 1$/m);

      // Both replicas' monitors see it; the database lets one report it.
      await eventually(async () => (await chain(stuckDb, id)).some((e) => e.kind === 'run.stuck'));
      await new Promise((r) => setTimeout(r, 3_000));
      const notices = (await chain(stuckDb, id)).filter((e) => e.kind === 'run.stuck');
      expect(notices).toHaveLength(1);
      expect(notices[0]).toMatchObject({ actor: 'system', data: { stepId: 'hang', thresholdMs: 602_000 } });
      // The notice is not progress: still stuck.
      expect((await httpJson('GET', `${a.url}/api/runs?stuck=true`, undefined, SERVICE)).body.items.map((r: any) => r.id)).toEqual([id]);

      // The console's home page lists it under "needs attention".
      const page = await httpJson('GET', `${a.url}/`, undefined, SERVICE);
      expect(String(page.body)).toContain('Needs attention');
      expect(String(page.body)).toContain(id);

      const cancelled = await runCli(['cancel', id, '--reason', 'worker died'], { FIREBREAK_URL: a.url, FIREBREAK_TOKEN: stuckTokens.alice! });
      expect(cancelled.code, cancelled.stderr).toBe(0);
      expect((await httpJson('GET', `${a.url}/api/runs?stuck=true`, undefined, SERVICE)).body.items).toEqual([]);
      expect((await httpJson('GET', `${b.url}/metrics`)).body).toMatch(/^firebreak_runs_stuck 0$/m);

      const verify = await runCli(['audit', 'verify'], { DATABASE_URL: stuckDb.url, FIREBREAK_AUDIT_KEY: audit.hex });
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    } finally {
      release();
    }
  });
});
