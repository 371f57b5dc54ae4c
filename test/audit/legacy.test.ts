/**
 * Upgrading a database whose chains were written before keyed hashing (plain
 * SHA-256): `firebreak migrate` freezes where each old chain ended; verify
 * checks those prefixes as unkeyed, says so, and never lets a chain written
 * later pass as "legacy".
 */
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCheckpoints } from '../../src/audit/index.js';
import { migrationsDir, withTransaction } from '../../src/store/index.js';
import { Timeline } from '../../src/timeline/index.js';
import { testAuditKey } from '../helpers/audit.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { runCli } from '../helpers/server.js';

const canonicalize = createRequire(import.meta.url)('canonicalize') as (v: unknown) => string;
const audit = testAuditKey();
const timeline = new Timeline(audit.key);
let db: TestDatabase;
let env: Record<string, string>;
const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];

/** What the old version did: SHA-256 over the previous hash and the canonical event. */
async function insertLegacyChain(chainId: string, kinds: string[]): Promise<void> {
  let prev = '0'.repeat(64);
  for (const [i, kind] of kinds.entries()) {
    const event = { chainId, seq: i + 1, runId: chainId, time: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(), kind, actor: 'system', data: { i }, prevHash: prev };
    const hash = createHash('sha256').update(prev).update('\n').update(canonicalize(event)).digest('hex');
    await db.pool.query('insert into timeline_events (chain_id, seq, run_id, time, kind, actor, data, prev_hash, hash) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)', [
      chainId, event.seq, chainId, event.time, kind, 'system', JSON.stringify(event.data), prev, hash,
    ]);
    prev = hash;
  }
}

async function rehashWithSha256(chainId: string, fromSeq: number): Promise<void> {
  const { rows } = await db.pool.query('select * from timeline_events where chain_id = $1 order by seq', [chainId]);
  let prev = rows.find((r) => r.seq === fromSeq - 1)?.hash ?? '0'.repeat(64);
  for (const r of rows.filter((r) => r.seq >= fromSeq)) {
    const event = { chainId, seq: r.seq, runId: r.run_id, time: r.time.toISOString(), kind: r.kind, actor: r.actor, data: r.data, prevHash: prev };
    const hash = createHash('sha256').update(prev).update('\n').update(canonicalize(event)).digest('hex');
    await db.pool.query('update timeline_events set prev_hash = $2, hash = $3 where id = $1', [r.id, prev, hash]);
    prev = hash;
  }
}

/** As the table's owner: its triggers off while fn runs (a statement, or any steps). */
async function asOwner(table: string, fn: string | (() => Promise<unknown>), params: unknown[] = []): Promise<void> {
  await db.pool.query(`alter table ${table} disable trigger user`);
  try {
    await (typeof fn === 'string' ? db.pool.query(fn, params) : fn());
  } finally {
    await db.pool.query(`alter table ${table} enable trigger user`);
  }
}

/** As the owner: change one event, then re-hash the chain from `fromSeq` with the old function, as an attacker without the key would. */
async function editAndRehashWithSha256(chainId: string, seq: number, assignment: string, fromSeq: number): Promise<void> {
  await asOwner('timeline_events', async () => {
    await db.pool.query(`update timeline_events set ${assignment} where chain_id = $1 and seq = $2`, [chainId, seq]);
    await rehashWithSha256(chainId, fromSeq);
  });
}

beforeAll(async () => {
  // A database as the previous version left it: migrations before 0014, chains hashed with plain SHA-256.
  db = await createTestDatabase({ migrate: false });
  await db.pool.query('create table firebreak_migrations (version integer primary key, name text not null, applied_at timestamptz not null default now())');
  for (const file of (await readdir(migrationsDir())).filter((f) => /^\d{4}_.*\.sql$/.test(f) && Number(f.slice(0, 4)) < 14).sort()) {
    await db.pool.query(await readFile(join(migrationsDir(), file), 'utf8'));
    await db.pool.query('insert into firebreak_migrations (version, name) values ($1, $2)', [Number(file.slice(0, 4)), file]);
  }
  await insertLegacyChain(a, ['run.created', 'run.started', 'step.started']);
  await insertLegacyChain(b, ['run.created', 'run.started']);
  await insertLegacyChain(c, ['run.created', 'run.started']);
  env = { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: audit.hex };
});
afterAll(async () => db?.drop());

describe('chains written before keyed hashing', () => {
  it('firebreak migrate upgrades the database and freezes the old chains as legacy', async () => {
    const res = await runCli(['migrate'], env);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('applied: 0014_audit_checkpoints.sql');
    expect((await runCli(['migrate'], env)).stdout).toContain('schema up to date');
    const { rows } = await db.pool.query('select chain_id, seq from timeline_legacy_heads order by chain_id');
    expect(rows).toEqual([a, b, c].sort().map((id) => ({ chain_id: id, seq: id === a ? 3 : 2 })));
    await expect(db.pool.query(`insert into timeline_legacy_heads values ('x', 1, $1)`, ['0'.repeat(64)])).rejects.toThrow(/append-only/);
  });

  it('verify checks a legacy prefix as unkeyed SHA-256, keyed events after it under the key, and says which is which', async () => {
    await withTransaction(db.pool, (client) => timeline.appendToRun(client, a, { kind: 'step.succeeded', actor: 'system', data: { after: 'upgrade' } }));
    // Until a checkpoint signs the boundary it is plain data the table owner could have written: not good enough.
    const res = await runCli(['audit', 'verify'], env);
    expect(res.code, res.stdout + res.stderr).toBe(1);
    expect(res.stdout).toContain('BROKEN legacy boundary: 7 unkeyed event(s) in 3 chain(s) rest on it, but no verified checkpoint signs it');
    expect(res.stdout).toContain('start the server, which signs one');
    await writeCheckpoints(db.pool, audit.key, { minSpacingMs: 0, lookbackMs: 0 });
    const sealed = await runCli(['audit', 'verify'], env);
    expect(sealed.code, sealed.stdout + sealed.stderr).toBe(0);
    expect(sealed.stderr).toContain('note: 7 event(s) in 3 chain(s) were written before keyed hashing: checked as unkeyed SHA-256 up to the boundary frozen at upgrade, which a verified checkpoint signs');
    expect((await runCli(['audit', 'verify', a], env)).code).toBe(0);
  });

  it('a chain begun after the upgrade and re-hashed with SHA-256 is not legacy: it fails', async () => {
    const d = randomUUID();
    await withTransaction(db.pool, (client) => timeline.appendToRun(client, d, { kind: 'run.created', actor: 'system' }, { kind: 'run.started', actor: 'system' }));
    await editAndRehashWithSha256(d, 2, `actor = 'mallory'`, 1);
    const res = await runCli(['audit', 'verify', d], env);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`BROKEN chain ${d}: first broken event seq 1`);
    expect(res.stdout).toContain('re-hashed by someone without the key');

    // Declaring it legacy afterwards does not help: the boundary no longer matches its seal.
    const { rows } = await db.pool.query('select hash from timeline_events where chain_id = $1 and seq = 2', [d]);
    await asOwner('timeline_legacy_heads', 'insert into timeline_legacy_heads values ($1, 2, $2)', [d, rows[0].hash]);
    const all = await runCli(['audit', 'verify'], env);
    expect(all.code).toBe(1);
    expect(all.stdout).toContain('BROKEN legacy boundary: timeline_legacy_heads no longer matches the seal written at upgrade');
    // Nor does re-sealing it: the signed checkpoints name the old seal.
    await asOwner('timeline_legacy_seal', `update timeline_legacy_seal set chains = 4, digest = (select encode(sha256(convert_to(string_agg(chain_id || ' ' || seq || ' ' || hash, E'\\n' order by chain_id), 'UTF8')), 'hex') from timeline_legacy_heads)`);
    const resealed = await runCli(['audit', 'verify'], env);
    expect(resealed.code).toBe(1);
    expect(resealed.stdout).not.toContain('no longer matches the seal');
    expect(resealed.stdout).toMatch(/BROKEN checkpoint #1: signs another legacy boundary than the one stored/);
  });

  it('an edited legacy event fails even when the legacy prefix is re-hashed to match', async () => {
    await editAndRehashWithSha256(b, 1, `data = '{"i":0,"note":"added later"}'`, 1);
    const res = await runCli(['audit', 'verify', b], env);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`BROKEN chain ${b}: first broken event seq 2`);
    expect(res.stdout).toContain('differs from the legacy boundary frozen at upgrade');
  });
});
