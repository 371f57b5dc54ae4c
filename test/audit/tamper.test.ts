/**
 * Issue 13's timeline reproduction, through the real server and the CLI: with
 * the append-only trigger disabled by the table's owner, removing the last
 * events of a finished run, or editing an event and re-hashing the chain,
 * used to pass `firebreak audit verify`. Each tamper case below must now fail
 * (exit 1) naming the run and the event.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeCheckpoints } from '../../src/audit/index.js';
import type { EventRow } from '../../src/timeline/index.js';
import { testAuditKey } from '../helpers/audit.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer } from '../helpers/server.js';

const canonicalize = createRequire(import.meta.url)('canonicalize') as (v: unknown) => string;

let db: TestDatabase;
const audit = testAuditKey();
let env: Record<string, string>;
let work: string;
let exported: string;
let shippedLog: string;
const runs: string[] = [];

type Row = EventRow;

async function chain(runId: string): Promise<Row[]> {
  return (await db.pool.query<Row>('select * from timeline_events where chain_id = $1 order by seq', [runId])).rows;
}

/** As the table's owner: switch the append-only triggers off, change things, switch them back on. */
async function asOwner(fn: () => Promise<unknown>): Promise<void> {
  await db.pool.query('alter table timeline_events disable trigger user');
  try {
    await fn();
  } finally {
    await db.pool.query('alter table timeline_events enable trigger user');
  }
}

/** Re-hash a chain from `fromSeq` on with the given function over (previous hash, canonical event), as an attacker would. */
async function rehash(runId: string, fromSeq: number, hash: (prev: string, canonical: string) => string): Promise<void> {
  const rows = await chain(runId);
  let prev = rows.find((r) => r.seq === fromSeq - 1)?.hash ?? '0'.repeat(64);
  for (const r of rows.filter((r) => r.seq >= fromSeq)) {
    const event = { chainId: r.chain_id, seq: r.seq, runId: r.run_id, time: r.time.toISOString(), kind: r.kind, actor: r.actor, data: r.data, prevHash: prev };
    const next = hash(prev, canonicalize(event));
    await db.pool.query('update timeline_events set prev_hash = $2, hash = $3 where id = $1', [r.id, prev, next]);
    prev = next;
  }
}

const sha256 = (prev: string, canonical: string) => createHash('sha256').update(prev).update('\n').update(canonical).digest('hex');
const hmacUnder = (key: Buffer) => (prev: string, canonical: string) => createHmac('sha256', key).update(prev).update('\n').update(canonical).digest('hex');

async function verify(...args: string[]) {
  return runCli(['audit', 'verify', ...args], env);
}

beforeAll(async () => {
  db = await createTestDatabase();
  work = await mkdtemp(join(tmpdir(), 'fb-audit-tamper-'));
  const dir = await playbooksDir({
    'notes.yaml': `
name: notes
steps:
  - { id: one, action: note, with: { text: "one" } }
  - { id: two, action: note, with: { text: "two" } }
  - { id: three, action: note, with: { text: "three" } }
`,
  });
  env = { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: audit.hex, FIREBREAK_DATA_DIR: join(work, 'data') };
  const server = await startServer({ ...env, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_AUDIT_CHECKPOINT_MS: '1000' });
  try {
    for (let i = 0; i < 8; i++) {
      const res = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'notes' });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      runs.push(res.body.id);
    }
    await eventually(async () => {
      const { rows } = await db.pool.query(`select count(*)::int as n from runs where status = 'succeeded'`);
      return rows[0].n === runs.length;
    }, 30_000);
    // Every finished chain's head is in a checkpoint; keep a copy outside the database, as an operator would.
    const items = await eventually(async () => {
      const { body } = await httpJson('GET', `${server.url}/api/audit/checkpoints?limit=500`);
      const heads = new Map<string, number>();
      for (const c of body.items) for (const h of c.heads) heads.set(h.chain, Math.max(heads.get(h.chain) ?? 0, h.seq));
      for (const id of runs) if (heads.get(id) !== (await chain(id)).length) return undefined;
      return body.items;
    }, 30_000);
    exported = join(work, 'exported.json');
    await writeFile(exported, JSON.stringify({ items }));
  } finally {
    await server.stop();
  }
  shippedLog = join(work, 'server.log');
  await writeFile(shippedLog, server.logs());
}, 120_000);

afterAll(async () => db?.drop());

describe('audit verify against a tampering table owner', () => {
  it('passes the untouched database, with the stored checkpoints, the exported ones and the shipped log', async () => {
    const plain = await verify();
    expect(plain.code, plain.stdout + plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(new RegExp(`audit ok: ${runs.length} chain\\(s\\), \\d+ event\\(s\\) checked under audit key [0-9a-f]{16}`));
    const withExport = await verify('--checkpoints', exported);
    expect(withExport.code, withExport.stdout + withExport.stderr).toBe(0);
    const withLog = await verify('--checkpoints', shippedLog);
    expect(withLog.code, withLog.stdout + withLog.stderr).toBe(0);
    expect(withLog.stdout).toMatch(/exported/);
  });

  it('a finished run whose last events were deleted fails, naming the run and its last remaining event', async () => {
    const runId = runs[0]!;
    const before = await chain(runId);
    const keep = before.length - 2;
    await asOwner(() => db.pool.query('delete from timeline_events where chain_id = $1 and seq > $2', [runId, keep]));
    const res = await verify(runId);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`BROKEN chain ${runId}: last event seq ${keep} (id ${before[keep - 1]!.id}, kind ${before[keep - 1]!.kind})`);
    expect(res.stdout).toMatch(/removed from the end/);
  });

  it('the same cut, with runs edited to look unfinished, is caught by the signed checkpoint', async () => {
    const runId = runs[1]!;
    const before = await chain(runId);
    await asOwner(() => db.pool.query('delete from timeline_events where chain_id = $1 and seq > $2', [runId, before.length - 3]));
    await db.pool.query(`update runs set status = 'running', finished_at = null where id = $1`, [runId]);
    const res = await verify(runId);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`BROKEN chain ${runId}: last event seq ${before.length - 3}`);
    expect(res.stdout).toMatch(new RegExp(`checkpoint #\\d+ \\(signed [^)]+\\) recorded seq ${before.length}: events were removed from the end`));
  });

  it('an event edited and the chain re-hashed with the old unkeyed hash fails at that event', async () => {
    const runId = runs[2]!;
    const target = (await chain(runId))[2]!;
    await asOwner(async () => {
      await db.pool.query(`update timeline_events set actor = 'someone-else' where id = $1`, [target.id]);
      await rehash(runId, target.seq, sha256);
    });
    const res = await verify(runId);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`BROKEN chain ${runId}: first broken event seq ${target.seq} (id ${target.id}, kind ${target.kind})`);
    expect(res.stdout).toMatch(/re-hashed by someone without the key/);
  });

  it('an event edited and the chain re-hashed under another key fails at that event', async () => {
    const runId = runs[3]!;
    const target = (await chain(runId))[3]!;
    await asOwner(async () => {
      await db.pool.query(`update timeline_events set data = data || '{"approvedBy":"nobody"}' where id = $1`, [target.id]);
      await rehash(runId, target.seq, hmacUnder(randomBytes(32)));
    });
    const res = await verify(runId);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`BROKEN chain ${runId}: first broken event seq ${target.seq} (id ${target.id}, kind ${target.kind})`);
  });

  it('an event removed from the middle (and the rest re-linked without the key) fails', async () => {
    const runId = runs[4]!;
    const rows = await chain(runId);
    await asOwner(async () => {
      await db.pool.query('delete from timeline_events where id = $1', [rows[2]!.id]);
      await db.pool.query('update timeline_events set seq = seq - 1 where chain_id = $1 and seq > 3', [runId]);
      await rehash(runId, 3, sha256);
    });
    const res = await verify(runId);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`BROKEN chain ${runId}: first broken event seq 3`);
  });

  it('a chain removed entirely fails: runs and the checkpoint still remember it', async () => {
    const runId = runs[5]!;
    await asOwner(() => db.pool.query('delete from timeline_events where chain_id = $1', [runId]));
    const res = await verify(runId);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`BROKEN chain ${runId}: no events left`);
  });

  it('someone with the key and owner rights who re-signs the checkpoints passes the database alone, but not the exported checkpoints', async () => {
    const runId = runs[6]!;
    const target = (await chain(runId))[2]!;
    await asOwner(async () => {
      await db.pool.query(`update timeline_events set actor = 'insider' where id = $1`, [target.id]);
      await rehash(runId, target.seq, hmacUnder(Buffer.from(audit.hex, 'hex')));
    });
    // The stored checkpoint still holds the old head.
    // The stored checkpoints still hold the old hashes: the first checkpointed position at or after the edit gives it away.
    const caught = await verify(runId);
    expect(caught.code).toBe(1);
    const named = new RegExp(`BROKEN chain ${runId}: first broken event seq (\\d+) \\(id \\d+, kind [a-z._]+\\): hash differs from the one checkpoint #\\d+ \\(signed [^)]+\\) recorded for seq \\1: the chain was rewritten after that checkpoint`).exec(caught.stdout);
    expect(named, caught.stdout).not.toBeNull();
    expect(Number(named![1])).toBeGreaterThanOrEqual(target.seq);
    // The insider then rewrites the checkpoints too, with the project's own writer and the key.
    await db.pool.query('alter table audit_checkpoint_heads disable trigger user; alter table audit_checkpoints disable trigger user');
    await db.pool.query('delete from audit_checkpoint_heads; delete from audit_checkpoints');
    await db.pool.query('alter table audit_checkpoint_heads enable trigger user; alter table audit_checkpoints enable trigger user');
    const resigned = await writeCheckpoints(db.pool, audit.key, { minSpacingMs: 0, lookbackMs: 0 });
    expect(resigned.written.length).toBeGreaterThan(0);
    const fooled = await verify(runId);
    expect(fooled.code, fooled.stdout).toBe(0);
    // What was kept outside the database says otherwise.
    const res = await verify(runId, '--checkpoints', exported);
    expect(res.code).toBe(1);
    expect(res.stdout).toMatch(/BROKEN checkpoint #1 in .*exported\.json: differs from the stored checkpoint/);
    expect(res.stdout).toMatch(new RegExp(`BROKEN chain ${runId}: first broken event seq \\d+ \\(id \\d+, kind [a-z.]+\\): hash differs from the one checkpoint #\\d+ in .*exported\\.json`));
    const fromLog = await verify(runId, '--checkpoints', shippedLog);
    expect(fromLog.code).toBe(1);
  });

  it('the whole-database verify names every tampered run, and the untouched one is not among them', async () => {
    const res = await verify('--checkpoints', exported);
    expect(res.code).toBe(1);
    for (const runId of runs.slice(0, 7)) expect(res.stdout).toContain(`BROKEN chain ${runId}`);
    expect(res.stdout).not.toContain(`BROKEN chain ${runs[7]}`);
    expect(res.stderr).toMatch(/audit FAILED/);
  });
});
