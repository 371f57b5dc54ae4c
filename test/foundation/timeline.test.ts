import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTransaction } from '../../src/store/index.js';
import { verifyAudit } from '../../src/audit/index.js';
import { Timeline, readChain, GENESIS_HASH } from '../../src/timeline/index.js';
import { testAuditKey } from '../helpers/audit.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runCli } from '../helpers/server.js';

let db: TestDatabase;
const audit = testAuditKey();
const timeline = new Timeline(audit.key, ['hunter2-secret']);
const verifyChains = (pool: TestDatabase['pool'], options: { chainId: string }) => verifyAudit(pool, { key: audit.key, ...options });

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => db?.drop());

async function append(runId: string, kind: string, data: Record<string, unknown> = {}) {
  return withTransaction(db.pool, (c) => timeline.appendToRun(c, runId, { kind, actor: 'system', data }));
}

describe('timeline_events', () => {
  it('the database rejects UPDATE, DELETE and TRUNCATE', async () => {
    const runId = randomUUID();
    await append(runId, 'run.created');
    await expect(db.pool.query("update timeline_events set kind = 'run.hacked' where run_id = $1", [runId])).rejects.toThrow(/append-only/);
    await expect(db.pool.query('delete from timeline_events where run_id = $1', [runId])).rejects.toThrow(/append-only/);
    await expect(db.pool.query('truncate timeline_events')).rejects.toThrow(/append-only/);
    expect((await readChain(db.pool, runId)).length).toBe(1);
  });

  it('chains each event to the one before and redacts secrets before hashing', async () => {
    const runId = randomUUID();
    await append(runId, 'run.created', { token: 'Bearer hunter2-secret' });
    await append(runId, 'step.started', { n: 1 });
    const events = await readChain(db.pool, runId);
    expect(events[0]!.prevHash).toBe(GENESIS_HASH);
    expect(events[1]!.prevHash).toBe(events[0]!.hash);
    expect(JSON.stringify(events)).not.toContain('hunter2-secret');
    expect(events[0]!.data.token).toBe('Bearer [redacted]');
    const report = await verifyChains(db.pool, { chainId: runId });
    expect(report).toMatchObject({ chains: 1, events: 2, broken: [] });
  });

  it('50 concurrent appends produce one unbroken chain', async () => {
    const runId = randomUUID();
    await Promise.all(Array.from({ length: 50 }, (_, i) => append(runId, 'step.progress', { i })));
    const events = await readChain(db.pool, runId);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(new Set(events.map((e) => e.data.i)).size).toBe(50);
    expect((await verifyChains(db.pool, { chainId: runId })).broken).toEqual([]);
  });

  it('audit verify finds a tampered event and names it', async () => {
    const runId = randomUUID();
    for (const kind of ['run.created', 'policy.decision', 'step.started', 'step.succeeded']) await append(runId, kind, { note: kind });
    const env = { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: audit.hex };
    const clean = await runCli(['audit', 'verify', runId], env);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toMatch(/audit ok: 1 chain\(s\), 4 event\(s\)/);
    // A superuser can switch the trigger off; the hashes still give it away.
    await db.pool.query('alter table timeline_events disable trigger user');
    await db.pool.query(`update timeline_events set data = '{"note":"policy.decision","allow":true}' where run_id = $1 and seq = 2`, [runId]);
    await db.pool.query('alter table timeline_events enable trigger user');
    const tampered = await runCli(['audit', 'verify', runId], env);
    expect(tampered.code).toBe(1);
    expect(tampered.stdout).toContain(`BROKEN chain ${runId}: first broken event seq 2`);
    expect(tampered.stdout).toContain('kind policy.decision');
    // Whole-database verify also fails and names the same event.
    const all = await runCli(['audit', 'verify'], env);
    expect(all.code).toBe(1);
    expect(all.stdout).toContain(`seq 2`);
  });

  it('a deleted event shows as a sequence gap', async () => {
    const runId = randomUUID();
    for (const kind of ['run.created', 'step.started', 'step.succeeded']) await append(runId, kind);
    await db.pool.query('alter table timeline_events disable trigger user');
    await db.pool.query('delete from timeline_events where run_id = $1 and seq = 2', [runId]);
    await db.pool.query('alter table timeline_events enable trigger user');
    const report = await verifyChains(db.pool, { chainId: runId });
    expect(report.broken[0]).toMatchObject({ chainId: runId, seq: 3 });
    expect(report.broken[0]!.problem).toMatch(/gap/);
  });
});
