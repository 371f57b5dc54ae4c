/**
 * Failure is a feature: processes die mid-run, restart, and share one database.
 * No step with a recorded success runs twice; an attempt cut short is re-driven
 * with the same Idempotency-Key; timers live in the database.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { advanceDatabaseClock, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { genericAlert, playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, startServer, type ServerProcess } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';

let db: TestDatabase;
let target: Target;
let dir: string;
let servers: ServerProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  target = await startTarget();
  const T = target.url;
  dir = await playbooksDir({
    'crash.yaml': `
name: crash
triggers: [{ matchers: ['alertname="Crash"'] }]
steps:
  - { id: one, action: http.request, with: { method: POST, url: "${T}/crash/one" } }
  - { id: two, action: http.request, with: { method: POST, url: "${T}/crash/two" }, timeout: 30s }
  - { id: three, action: http.request, with: { method: POST, url: "${T}/crash/three" } }
`,
    'many.yaml': `
name: many
triggers: [{ matchers: ['alertname="Many"'] }]
steps:
  - { id: a, action: http.request, with: { method: POST, url: "${T}/many/a" } }
  - { id: b, action: http.request, with: { method: POST, url: "${T}/many/b" } }
`,
    'timers.yaml': `
name: timers
triggers: [{ matchers: ['alertname="Timers"'] }]
steps:
  - id: flaky
    action: http.request
    with: { method: POST, url: "${T}/timers/flaky" }
    retry: { attempts: 3, backoff: 10m, max_backoff: 10m }
  - { id: pause, action: wait, with: { duration: 10m } }
  - { id: done, action: http.request, with: { method: POST, url: "${T}/timers/done" } }
`,
  });
});

afterEach(async () => {
  for (const s of servers) await s.stop('SIGKILL');
  servers = [];
});

afterAll(async () => {
  await target?.close();
  await db?.drop();
});

const env = () => ({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_HTTP_ALLOW: '127.0.0.1', FIREBREAK_LEASE_MS: '1500' });

async function start(extra: Record<string, string> = {}): Promise<ServerProcess> {
  const s = await startServer({ ...env(), ...extra });
  servers.push(s);
  return s;
}

async function runStatus(url: string, runId: string) {
  return (await httpJson('GET', `${url}/api/runs/${runId}`)).body;
}

const keys = (path: string) => target.calls.filter((c) => c.path === path).map((c) => c.headers['idempotency-key']);

describe('durability', () => {
  it('SIGKILL mid-step: another process finishes the run; nothing that succeeded runs again', async () => {
    target.respond('/crash/two', (_c, n) => ({ status: 200, delayMs: n === 1 ? 5_000 : 0 }));
    const a = await start();
    const fired = await httpJson('POST', `${a.url}/hooks/generic`, genericAlert({ alertname: 'Crash' }));
    const runId = fired.body.runs[0];
    await eventually(async () => target.count('/crash/two') === 1);
    await a.stop('SIGKILL');
    const b = await start();
    const run = await eventually(async () => {
      const r = await runStatus(b.url, runId);
      return r.status === 'succeeded' ? r : undefined;
    }, 30_000);
    expect(keys('/crash/one')).toEqual([`${runId}:one:1`]);
    // The attempt cut short is driven again with the same key; the target can deduplicate it.
    expect(keys('/crash/two')).toEqual([`${runId}:two:1`, `${runId}:two:1`]);
    expect(keys('/crash/three')).toEqual([`${runId}:three:1`]);
    expect(run.steps.map((s: any) => s.attempts)).toEqual([1, 1, 1]);
    const kinds = (await httpJson('GET', `${b.url}/api/runs/${runId}/timeline`)).body.events.map((e: any) => e.kind);
    expect(kinds).toContain('step.resumed');
  });

  it('two processes, 200 runs: every step called exactly once', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    const runIds: string[] = [];
    for (let i = 0; i < 200; i++) {
      const via = i % 2 === 0 ? a : b;
      const res = await httpJson('POST', `${via.url}/hooks/generic`, genericAlert({ alertname: 'Many', n: String(i) }));
      expect(res.status).toBe(202);
      runIds.push(res.body.runs[0]);
    }
    expect(new Set(runIds).size).toBe(200);
    await eventually(async () => {
      const { rows } = await db.pool.query("select count(*)::int as n from runs where playbook = 'many' and status = 'succeeded'");
      return rows[0].n === 200;
    }, 60_000, 250);
    for (const path of ['/many/a', '/many/b']) {
      const seen = keys(path);
      expect(seen).toHaveLength(200);
      expect(new Set(seen).size).toBe(200);
    }
    // Both processes did work.
    const { rows } = await db.pool.query("select count(distinct worker)::int as n from step_attempts a join runs r on r.id = a.run_id where r.playbook = 'many'");
    expect(rows[0].n).toBe(2);
  });

  it('retry backoff and wait timers survive a restart of every process', async () => {
    target.respond('/timers/flaky', (_c, n) => ({ status: n === 1 ? 503 : 200 }));
    let s = await start();
    const fired = await httpJson('POST', `${s.url}/hooks/generic`, genericAlert({ alertname: 'Timers' }));
    const runId = fired.body.runs[0];
    // First attempt failed and a retry is scheduled 5-10 minutes out (database time): stop everything.
    await eventually(async () => target.count('/timers/flaky') === 1);
    await eventually(async () => (await runStatus(s.url, runId)).steps[0].status === 'pending');
    await s.stop('SIGTERM');
    servers = [];
    s = await start();
    // Nothing happens until the database's clock reaches the stored timer.
    const { rows: timer } = await db.pool.query(`select extract(epoch from run_at - fb_now()) as left_s from runs where id = $1`, [runId]);
    expect(Number(timer[0].left_s)).toBeGreaterThan(4 * 60);
    expect(target.count('/timers/flaky')).toBe(1);
    await advanceDatabaseClock(db.pool, '10 minutes');
    await eventually(async () => target.count('/timers/flaky') === 2, 15_000);
    // Now in the 10-minute wait step: kill and restart again.
    await eventually(async () => (await runStatus(s.url, runId)).steps[1].status === 'running', 10_000);
    await s.stop('SIGKILL');
    servers = [];
    s = await start();
    await advanceDatabaseClock(db.pool, '10 minutes');
    const run = await eventually(async () => {
      const r = await runStatus(s.url, runId);
      return r.status === 'succeeded' ? r : undefined;
    }, 20_000);
    expect(keys('/timers/flaky')).toEqual([`${runId}:flaky:1`, `${runId}:flaky:2`]);
    expect(target.count('/timers/done')).toBe(1);
    // The wait was not restarted by the restart: one start, its stored deadline honoured (on the database clock).
    const events = (await httpJson('GET', `${s.url}/api/runs/${runId}/timeline`)).body.events;
    const pause = events.filter((e: any) => e.data.stepId === 'pause');
    expect(pause.filter((e: any) => e.kind === 'step.started')).toHaveLength(1);
    const started = Date.parse(pause.find((e: any) => e.kind === 'step.started').time);
    const succeeded = Date.parse(pause.find((e: any) => e.kind === 'step.succeeded').time);
    expect(succeeded - started).toBeGreaterThanOrEqual(10 * 60_000 - 100);
    expect(run.steps.map((s: any) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
  });
});
