/**
 * The race the chaos run hunts for, made deterministic: worker A's lease
 * expires (a stall, a heartbeat lost to a Postgres restart) while A is
 * committing a step's success. Worker B must not be able to claim the run in
 * the middle of that commit, read the step as still running and call it again
 * after its success was recorded.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { createActionRegistry } from '../../src/actions/index.js';
import { Secrets } from '../../src/config/index.js';
import { Engine } from '../../src/engine/index.js';
import { RunExecutor } from '../../src/engine/executor.js';
import { Worker } from '../../src/engine/worker.js';
import { CLAIM_RUNS } from '../../src/engine/queries.js';
import { loadPlaybooks } from '../../src/playbooks/index.js';
import { createPolicyGate, type ReloadingPolicyGate } from '../../src/policy/index.js';
import { Timeline } from '../../src/timeline/index.js';
import { testAuditKey } from '../helpers/audit.js';
import { advanceDatabaseClock, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, ROOT } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';

let db: TestDatabase;
let target: Target;
let policy: ReloadingPolicyGate;

beforeAll(async () => {
  db = await createTestDatabase();
  target = await startTarget();
  policy = await createPolicyGate({ dir: join(ROOT, 'policies'), logger: pino({ level: 'silent' }), watch: false });
});

afterAll(async () => {
  await policy?.close();
  await target?.close();
  await db?.drop();
});

describe('lease fencing', () => {
  it('a worker whose lease expired while it commits a success does not let another worker run the step again', async () => {
    const logger = pino({ level: 'silent' });
    const actions = createActionRegistry();
    const dir = await playbooksDir({
      'fence.yaml': `
name: fence
steps:
  - { id: one, action: http.request, with: { method: POST, url: "${target.url}/fence/one" } }
  - { id: two, action: note, with: { text: done } }
`,
    });
    const { playbooks, problems } = await loadPlaybooks(dir, { actions });
    expect(problems).toEqual([]);
    const timeline = new Timeline(testAuditKey().key);
    const secrets = new Secrets({});
    const engine = new Engine({ pool: db.pool, databaseUrl: db.url, timeline, actions, policy: () => policy, playbooks: () => playbooks, logger, secrets, httpAllow: ['127.0.0.1'], playbooksDir: dir, workers: 0 });
    const executor = (id: string) => new RunExecutor({ pool: db.pool, timeline, clock: timeline.clock, actions, policy, logger, secrets, httpAllow: ['127.0.0.1'], playbooksDir: dir }, id);
    const signals = () => ({ lease: new AbortController().signal, abort: new AbortController().signal });
    const { runId } = await engine.startRun({ playbook: 'fence', startedBy: 'test' });

    // Worker A claims with a short lease and nobody renews it (no heartbeat here).
    const claimedByA = await db.pool.query(CLAIM_RUNS, ['worker-a', 10, 1_000]);
    expect(claimedByA.rows.map((r) => r.id)).toEqual([runId]);

    // Hold the attempt row before A calls the step, so A's success transaction stops after its
    // lease check and before its commit.
    const gate = await db.pool.connect();
    target.respond('/fence/one', { status: 200, delayMs: 300 });
    const a = executor('worker-a').advance(runId, signals());
    await eventually(async () => target.count('/fence/one') === 1, 10_000, 10);
    await gate.query('begin');
    await gate.query('select 1 from step_attempts where run_id = $1 for update', [runId]);
    // A is now blocked inside its success transaction; its 1 s lease runs out meanwhile.
    await eventually(async () => {
      const { rows } = await db.pool.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query ilike 'execute b_fb_engine_run_guard%'`);
      return rows[0].n > 0;
    }, 10_000, 20);
    // A's lease runs out meanwhile (the database's clock moves past it).
    await advanceDatabaseClock(db.pool, '2 seconds');

    // Worker B polls for runnable runs; it cannot take the row A is committing on.
    const claimedByB = await db.pool.query(CLAIM_RUNS, ['worker-b', 10, 30_000]);
    expect(claimedByB.rows).toEqual([]);
    const b = claimedByB.rows.length > 0 ? executor('worker-b').advance(runId, signals()) : Promise.resolve();
    await gate.query('rollback');
    gate.release();
    await Promise.all([a, b]);

    const keys = target.calls.filter((c) => c.path === '/fence/one').map((c) => c.headers['idempotency-key']);
    const succeeded = await db.pool.query(`select count(*)::int as n from timeline_events where run_id = $1 and kind = 'step.succeeded' and data->>'stepId' = 'one'`, [runId]);
    // The step succeeded once and was called once; B either found nothing to claim or found the step done.
    expect(succeeded.rows[0].n).toBe(1);
    expect(keys).toEqual([`${runId}:one:1`]);
  });

  it('a worker whose own lease lapsed (missed heartbeats) does not claim and drive a run it is still driving', async () => {
    const logger = pino({ level: 'silent' });
    const actions = createActionRegistry();
    const dir = await playbooksDir({
      'again.yaml': `
name: again
steps:
  - { id: one, action: http.request, with: { method: POST, url: "${target.url}/again/one" } }
  - { id: two, action: note, with: { text: done } }
`,
    });
    const { playbooks } = await loadPlaybooks(dir, { actions });
    const timeline = new Timeline(testAuditKey().key);
    const secrets = new Secrets({});
    const engine = new Engine({ pool: db.pool, databaseUrl: db.url, timeline, actions, policy: () => policy, playbooks: () => playbooks, logger, secrets, httpAllow: ['127.0.0.1'], playbooksDir: dir, workers: 0 });
    // A long lease: its heartbeat (every lease/3) will not come round during this test, as when heartbeats fail.
    const worker = new Worker({
      pool: db.pool,
      databaseUrl: db.url,
      clock: timeline.clock,
      logger,
      concurrency: 4,
      leaseMs: 60_000,
      pollMs: 50,
      makeExecutor: (id) => new RunExecutor({ pool: db.pool, timeline, clock: timeline.clock, actions, policy, logger, secrets, httpAllow: ['127.0.0.1'], playbooksDir: dir }, id),
    });
    target.respond('/again/one', { status: 200, delayMs: 1_500 });
    const { runId } = await engine.startRun({ playbook: 'again', startedBy: 'test' });
    worker.start();
    try {
      await eventually(async () => target.count('/again/one') === 1, 10_000, 10);
      // The lease lapses while the call is in flight (what a Postgres outage longer than the lease does).
      await db.pool.query(`update runs set lease_expires_at = now() - interval '1 second' where id = $1`, [runId]);
      await eventually(async () => (await db.pool.query('select status from runs where id = $1', [runId])).rows[0].status === 'succeeded', 15_000, 50);
    } finally {
      await worker.stop(2_000);
    }
    const keys = target.calls.filter((c) => c.path === '/again/one').map((c) => c.headers['idempotency-key']);
    const succeeded = await db.pool.query(`select count(*)::int as n from timeline_events where run_id = $1 and kind = 'step.succeeded' and data->>'stepId' = 'one'`, [runId]);
    expect(succeeded.rows[0].n).toBe(1);
    expect(keys).toEqual([`${runId}:one:1`]);
  });
});
