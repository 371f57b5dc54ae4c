/**
 * The table owner without the key, forging the legacy boundary: re-hash a
 * chain with plain SHA-256 (which needs no key), then declare it "written
 * before keyed hashing" by adding it to timeline_legacy_heads and
 * recomputing the seal (a plain digest). Verify used to accept such a chain
 * as a legacy prefix when asked about that one run, and for the whole
 * database once the owner had also removed every checkpoint. A legacy prefix
 * now counts only under a boundary that a verified checkpoint signs.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCheckpoints } from '../../src/audit/index.js';
import { withTransaction } from '../../src/store/index.js';
import { Timeline } from '../../src/timeline/index.js';
import { testAuditKey } from '../helpers/audit.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runCli } from '../helpers/server.js';

const canonicalize = createRequire(import.meta.url)('canonicalize') as (v: unknown) => string;
const audit = testAuditKey();
const timeline = new Timeline(audit.key);
let db: TestDatabase;
let env: Record<string, string>;

async function writeChain(chainId: string): Promise<void> {
  await withTransaction(db.pool, async (client) => {
    await timeline.lockRun(client, chainId);
    await timeline.appendToRun(client, chainId, { kind: 'run.created', actor: 'system' }, { kind: 'approval.granted', actor: 'token:bob', data: { approvalId: 'a1' } }, { kind: 'step.succeeded', actor: 'system' });
  });
}

/** As the owner (triggers off), no key: change who approved, re-hash with SHA-256, declare the chain legacy and re-seal. */
async function forgeAsLegacy(chainId: string): Promise<void> {
  const tables = ['timeline_events', 'timeline_legacy_heads', 'timeline_legacy_seal'];
  for (const t of tables) await db.pool.query(`alter table ${t} disable trigger user`);
  try {
    await db.pool.query(`update timeline_events set actor = 'token:mallory' where chain_id = $1 and kind = 'approval.granted'`, [chainId]);
    const { rows } = await db.pool.query('select * from timeline_events where chain_id = $1 order by seq', [chainId]);
    let prev = '0'.repeat(64);
    for (const r of rows) {
      const event = { chainId, seq: r.seq, runId: r.run_id, time: r.time.toISOString(), kind: r.kind, actor: r.actor, data: r.data, prevHash: prev };
      const hash = createHash('sha256').update(prev).update('\n').update(canonicalize(event)).digest('hex');
      await db.pool.query('update timeline_events set prev_hash = $2, hash = $3 where id = $1', [r.id, prev, hash]);
      prev = hash;
    }
    await db.pool.query('insert into timeline_legacy_heads (chain_id, seq, hash) values ($1, $2, $3)', [chainId, rows.length, prev]);
    await db.pool.query(
      `update timeline_legacy_seal set chains = (select count(*) from timeline_legacy_heads),
         digest = (select encode(sha256(convert_to(string_agg(chain_id || ' ' || seq || ' ' || hash, E'\\n' order by chain_id collate "C"), 'UTF8')), 'hex') from timeline_legacy_heads)`,
    );
  } finally {
    for (const t of tables) await db.pool.query(`alter table ${t} enable trigger user`);
  }
}

async function removeEveryCheckpoint(): Promise<void> {
  for (const t of ['audit_checkpoint_heads', 'audit_checkpoints']) {
    await db.pool.query(`alter table ${t} disable trigger user`);
    await db.pool.query(`delete from ${t}`);
    await db.pool.query(`alter table ${t} enable trigger user`);
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  env = { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: audit.hex };
});
afterAll(async () => db?.drop());

describe('a chain the table owner re-declares as legacy', () => {
  it('fails `audit verify <run>` for a run newer than the last checkpoint', async () => {
    const old = randomUUID();
    await writeChain(old);
    await writeCheckpoints(db.pool, audit.key, { minSpacingMs: 0, lookbackMs: 0 });
    const recent = randomUUID();
    await writeChain(recent);
    expect((await runCli(['audit', 'verify', recent], env)).code).toBe(0);

    await forgeAsLegacy(recent);
    const res = await runCli(['audit', 'verify', recent], env);
    expect(res.code, res.stdout + res.stderr).toBe(1);
    expect(res.stdout).toMatch(/BROKEN (legacy boundary|checkpoint #1)/);
    // The whole-database verify said so already (the checkpoint signs the old boundary).
    expect((await runCli(['audit', 'verify'], env)).code).toBe(1);
  });

  it('fails the whole-database verify when the owner removed every checkpoint as well', async () => {
    const old = randomUUID();
    await writeChain(old);
    await writeCheckpoints(db.pool, audit.key, { minSpacingMs: 0, lookbackMs: 0 });
    await forgeAsLegacy(old);
    await removeEveryCheckpoint();
    const res = await runCli(['audit', 'verify'], env);
    expect(res.code, res.stdout + res.stderr).toBe(1);
    expect(res.stdout).toContain('BROKEN legacy boundary');
    expect(res.stdout).toContain('no verified checkpoint signs');
    const one = await runCli(['audit', 'verify', old], env);
    expect(one.code, one.stdout + one.stderr).toBe(1);
  });
});
