/**
 * Leases bound everything a worker does for a run, compensation included:
 * a worker that loses a run's lease cuts its compensation call at once, so
 * two workers never compensate one step at the same time; and a worker that
 * stops gives a lease back only after the run it was driving has stopped.
 */
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActionRegistry } from '../../src/actions/index.js';
import { Secrets } from '../../src/config/index.js';
import { Engine } from '../../src/engine/index.js';
import { RunExecutor } from '../../src/engine/executor.js';
import { Worker } from '../../src/engine/worker.js';
import { loadPlaybooks } from '../../src/playbooks/index.js';
import { createPolicyGate, type ReloadingPolicyGate } from '../../src/policy/index.js';
import { Timeline } from '../../src/timeline/index.js';
import { testAuditKey } from '../helpers/audit.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { genericAlert, playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, ROOT, startServer, type ServerProcess } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';

let db: TestDatabase;
let target: Target;
let server: ServerProcess | undefined;
let policy: ReloadingPolicyGate;

const compensating = (t: string, name: string) => `
name: ${name}
triggers:
  - matchers: ['alertname="${name}"']
steps:
  - id: one
    action: http.request
    with: { method: POST, url: "${t}/${name}/one" }
    compensate: { action: http.request, with: { method: POST, url: "${t}/${name}/undo" } }
  - id: two
    action: http.request
    with: { method: POST, url: "${t}/${name}/two" }
`;

beforeAll(async () => {
  db = await createTestDatabase();
  target = await startTarget();
  policy = await createPolicyGate({ dir: join(ROOT, 'policies'), logger: pino({ level: 'silent' }), watch: false });
});

afterAll(async () => {
  await server?.stop();
  await policy?.close();
  await target?.close();
  await db?.drop();
});

const undoCalls = (name: string) => target.calls.filter((c) => c.path === `/${name}/undo`);

describe('leases', () => {
  it('a worker that loses the lease mid-compensation cuts its call; the next holder compensates the step once, after it', async () => {
    const dir = await playbooksDir({ 'comp-lease.yaml': compensating(target.url, 'comp-lease') });
    server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_HTTP_ALLOW: '127.0.0.1', FIREBREAK_LEASE_MS: '1500' });
    target.respond('/comp-lease/two', { status: 400, body: { error: 'no' } });
    const release = target.hold('/comp-lease/undo');
    const fired = await httpJson('POST', `${server.url}/hooks/generic`, genericAlert({ alertname: 'comp-lease' }));
    const runId = fired.body.startedRuns[0];
    await eventually(async () => undoCalls('comp-lease').length === 1);

    // Another worker takes the run over (this one's lease lapsed while it was stalled, say).
    await db.pool.query(`update runs set lease_owner = 'another-worker', lease_expires_at = now() + interval '1 hour' where id = $1`, [runId]);
    // The worker notices at its next heartbeat and cuts the call it was making.
    await eventually(async () => undoCalls('comp-lease')[0]!.closedAt !== undefined, 10_000, 20);
    const { rows: midway } = await db.pool.query(`select compensation_status from run_steps where run_id = $1 and step_id = 'one'`, [runId]);
    expect(midway[0].compensation_status).toBe('running');

    // The other worker goes away; the run is anyone's again, and its compensation is driven again with the same key.
    release();
    await db.pool.query(`update runs set lease_owner = null, lease_expires_at = null, run_at = now() where id = $1`, [runId]);
    const run = await eventually(async () => {
      const r = (await httpJson('GET', `${server!.url}/api/runs/${runId}`)).body;
      return r.status === 'failed' ? r : undefined;
    }, 20_000);
    expect(run.steps.map((s: any) => [s.id, s.status])).toEqual([
      ['one', 'compensated'],
      ['two', 'failed'],
    ]);
    const calls = undoCalls('comp-lease');
    expect(calls.map((c) => c.headers['idempotency-key'])).toEqual([`${runId}:one:compensate`, `${runId}:one:compensate`]);
    // Never two at once: the first was closed before the second arrived.
    expect(calls[0]!.closedAt!).toBeLessThanOrEqual(calls[1]!.at);
    const { rows } = await db.pool.query(`select kind from timeline_events where run_id = $1 and kind like 'compensation.%' order by seq`, [runId]);
    expect(rows.map((r) => r.kind)).toEqual(['compensation.started', 'compensation.started', 'compensation.succeeded']);
    await server.stop();
    server = undefined;
  });

  it('a stopping worker waits for the runs it cut short before it gives their leases back', async () => {
    const logger = pino({ level: 'silent' });
    const actions = createActionRegistry();
    const dir = await playbooksDir({ 'comp-stop.yaml': compensating(target.url, 'comp-stop') });
    const { playbooks, problems } = await loadPlaybooks(dir, { actions });
    expect(problems).toEqual([]);
    const timeline = new Timeline(testAuditKey().key);
    const secrets = new Secrets({});
    const engine = new Engine({ pool: db.pool, databaseUrl: db.url, timeline, actions, policy: () => policy, playbooks: () => playbooks, logger, secrets, httpAllow: ['127.0.0.1'], playbooksDir: dir, workers: 0 });
    const worker = new Worker({
      pool: db.pool,
      databaseUrl: db.url,
      clock: timeline.clock,
      logger,
      concurrency: 2,
      leaseMs: 30_000,
      pollMs: 50,
      makeExecutor: (id) => new RunExecutor({ pool: db.pool, timeline, clock: timeline.clock, actions, policy, logger, secrets, httpAllow: ['127.0.0.1'], playbooksDir: dir }, id),
    });
    target.respond('/comp-stop/two', { status: 400, body: { error: 'no' } });
    const release = target.hold('/comp-stop/undo');
    const { runId } = await engine.startRun({ playbook: 'comp-stop', startedBy: 'test' });
    worker.start();
    try {
      await eventually(async () => undoCalls('comp-stop').length === 1);
      await worker.stop(200);
      // By the time stop() is done, the run it was compensating has stopped (its call cut, nothing recorded)...
      expect(worker.activeRuns).toBe(0);
      const { rows } = await db.pool.query(`select lease_owner, status from runs where id = $1`, [runId]);
      // ... and only then was the lease given back, so another worker may resume at once.
      expect(rows[0]).toEqual({ lease_owner: null, status: 'running' });
      await eventually(async () => undoCalls('comp-stop')[0]!.closedAt !== undefined, 5_000, 20);
      const { rows: events } = await db.pool.query(`select kind from timeline_events where run_id = $1 and kind like 'compensation.%' order by seq`, [runId]);
      expect(events.map((r) => r.kind)).toEqual(['compensation.started']);
    } finally {
      release();
    }
  });
});
