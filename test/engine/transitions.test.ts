/**
 * Run transitions on a concurrency key, through the contract (webhooks, the
 * API, runs in the database): a run that leaves the key's queue wakes the runs
 * behind it, and admission is first come, first served. Steps call a local
 * target that holds its answers until the test lets them go, so nothing here
 * depends on timing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { genericAlert, playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, startServer, type ServerProcess } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';

let db: TestDatabase;
let server: ServerProcess;
let target: Target;

beforeAll(async () => {
  db = await createTestDatabase();
  target = await startTarget();
  const dir = await playbooksDir({
    'serial.yaml': `
name: serial
triggers:
  - matchers: ['alertname="Serial"']
concurrency:
  key: \${{ alert.labels.service }}
  limit: 1
steps:
  - id: hold
    action: http.request
    with: { method: POST, url: "${target.url}/gate/\${{ alert.labels.instance }}" }
  - id: after
    action: note
    with: { text: "done" }
`,
  });
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_HTTP_ALLOW: '127.0.0.1' });
});

afterAll(async () => {
  await server?.stop();
  await target?.close();
  await db?.drop();
});

async function fire(service: string, instance: string): Promise<string> {
  const res = await httpJson('POST', `${server.url}/hooks/generic`, genericAlert({ alertname: 'Serial', service, instance }, { fingerprint: `${service}-${instance}` }));
  expect(res.status).toBe(202);
  return res.body.startedRuns[0];
}

const row = async (runId: string) => (await db.pool.query('select status, created_at, started_at, finished_at, run_at from runs where id = $1', [runId])).rows[0];

async function queued(...runIds: string[]): Promise<void> {
  await eventually(async () => {
    const { rows } = await db.pool.query(`select count(*)::int as n from timeline_events where kind = 'run.queued' and run_id = any($1::uuid[])`, [runIds]);
    return rows[0].n === runIds.length;
  });
}

describe('run transitions on a concurrency key', () => {
  it('aborting a queued run wakes the run queued behind it: it starts when the first ends, not at a safety timer', async () => {
    const releaseA = target.hold('/gate/a1');
    const a = await fire('db', 'a1');
    await eventually(async () => target.count('/gate/a1') === 1); // A holds the key's one slot
    const b = await fire('db', 'b1');
    const c = await fire('db', 'c1');
    await queued(b, c);

    // Nobody may claim B for a while (as if another replica held it, slow to admit it): when A ends,
    // C is claimed alone and parks behind B, the older queued run.
    await db.pool.query(`update runs set lease_owner = 'another-replica', lease_expires_at = now() + interval '1 hour' where id = $1`, [b]);
    releaseA();
    await eventually(async () => {
      const { rows } = await db.pool.query(
        `select c.run_at > a.finished_at + interval '59 seconds' as parked_behind_b
         from runs a, runs c where a.id = $1 and c.id = $2 and a.status = 'succeeded' and c.status = 'queued'`,
        [a, c],
      );
      return rows[0]?.parked_behind_b === true;
    });
    // The other replica lets B go without admitting it (not due for a while), and B is aborted while still queued.
    await db.pool.query(`update runs set lease_owner = null, lease_expires_at = null, run_at = now() + interval '1 hour' where id = $1`, [b]);
    const aborted = await httpJson('POST', `${server.url}/api/runs/${b}/abort`, { user: 'alice', reason: 'not needed' });
    expect(aborted.status).toBe(200);
    expect(aborted.body.status).toBe('aborted');
    const bRow = await row(b);
    expect(bRow.status).toBe('aborted');
    // C goes as soon as B is out of the way: well before its 60 s safety timer.
    const cRow = await eventually(async () => {
      const r = await row(c);
      return r.status === 'succeeded' ? r : undefined;
    }, 15_000);
    expect(cRow.started_at.getTime() - bRow.finished_at.getTime()).toBeLessThan(10_000);
    expect(target.count('/gate/b1')).toBe(0);
  });

  it('admits queued runs first come, first served', async () => {
    const releaseA = target.hold('/gate/a2');
    const a = await fire('web', 'a2');
    await eventually(async () => target.count('/gate/a2') === 1);
    const queue: string[] = [];
    for (const name of ['b2', 'c2', 'd2', 'e2']) queue.push(await fire('web', name));
    await queued(...queue);
    releaseA();
    const rows = await eventually(async () => {
      const all = await Promise.all([a, ...queue].map(row));
      return all.every((r) => r.status === 'succeeded') ? all : undefined;
    }, 30_000);
    // Created in this order, started in this order, each after the one before it finished.
    for (let i = 1; i < rows.length; i++) {
      expect(rows[i]!.created_at.getTime()).toBeGreaterThanOrEqual(rows[i - 1]!.created_at.getTime());
      expect(rows[i]!.started_at.getTime()).toBeGreaterThanOrEqual(rows[i - 1]!.finished_at.getTime());
    }
    const calls = target.calls.filter((c) => /^\/gate\/[b-e]2$/.test(c.path)).map((c) => c.path);
    expect(calls).toEqual(['/gate/b2', '/gate/c2', '/gate/d2', '/gate/e2']);
  });
});
