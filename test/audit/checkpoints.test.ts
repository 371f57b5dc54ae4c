/**
 * Signed chain checkpoints, through real servers: served at
 * GET /api/audit/checkpoints, logged as one line each (whatever LOG_LEVEL),
 * written by one replica at a time, signed in the documented format, and
 * never signed over a chain that was cut after its last checkpoint.
 */
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testAuditKey } from '../helpers/audit.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';

const canonicalize = createRequire(import.meta.url)('canonicalize') as (v: unknown) => string;

const API_TOKEN = 'checkpoint-reader-token';
const auth = { authorization: `Bearer ${API_TOKEN}` };
const audit = testAuditKey();
let db: TestDatabase;
let dir: string;
let a: ServerProcess;
let b: ServerProcess;

interface Checkpoint {
  seq: number;
  time: string;
  prevSignature: string;
  heads: Array<{ chain: string; seq: number; hash: string }>;
  legacyDigest: string;
  keyId: string;
  signature: string;
}

/** The format docs/audit.md gives, so anyone holding the key can check an exported checkpoint. */
function expectedSignature(c: Checkpoint): string {
  const signed = { v: 1, seq: c.seq, time: c.time, prevSignature: c.prevSignature, heads: c.heads, legacyDigest: c.legacyDigest };
  return createHmac('sha256', Buffer.from(audit.hex, 'hex')).update('firebreak.checkpoint.v1\n').update(canonicalize(signed)).digest('hex');
}

function loggedCheckpoints(logs: string): Checkpoint[] {
  return logs
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((l) => l.msg === 'audit checkpoint')
    .map((l) => l.checkpoint);
}

async function allCheckpoints(server: ServerProcess): Promise<Checkpoint[]> {
  const res = await httpJson('GET', `${server.url}/api/audit/checkpoints?limit=500`, undefined, auth);
  expect(res.status).toBe(200);
  return res.body.items;
}

async function startRun(server: ServerProcess): Promise<string> {
  const res = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'notes' }, auth);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id;
}

async function finished(runId: string): Promise<number> {
  return eventually(async () => {
    const { rows } = await db.pool.query(`select status, (select max(seq) from timeline_events where chain_id = $1::text) as head from runs where id = $1::text::uuid`, [runId]);
    return rows[0]?.status === 'succeeded' ? (rows[0].head as number) : undefined;
  }, 30_000);
}

async function checkpointedSeq(server: ServerProcess, runId: string): Promise<number> {
  return Math.max(0, ...(await allCheckpoints(server)).flatMap((c) => c.heads.filter((h) => h.chain === runId).map((h) => h.seq)));
}

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await playbooksDir({
    'notes.yaml': `
name: notes
steps:
  - { id: one, action: note, with: { text: "one" } }
  - { id: two, action: note, with: { text: "two" } }
`,
  });
  const env = { DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_API_TOKEN: API_TOKEN, FIREBREAK_AUDIT_KEY: audit.hex, FIREBREAK_AUDIT_CHECKPOINT_MS: '1000', LOG_LEVEL: 'warn' };
  [a, b] = await Promise.all([startServer(env), startServer(env)]);
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await db?.drop();
});

describe('signed checkpoints', () => {
  it('two replicas sign each checkpoint once, chained, in the documented format, and log each one', async () => {
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push(await startRun(i % 2 ? a : b));
    const heads = await Promise.all(ids.map(finished));
    await eventually(async () => {
      for (const [i, id] of ids.entries()) if ((await checkpointedSeq(a, id)) !== heads[i]) return false;
      return true;
    }, 30_000);
    const items = await allCheckpoints(b);
    // Newest first, numbered without gaps, each naming the one before.
    expect(items.map((c) => c.seq)).toEqual(items.map((_, i) => items.length - i));
    const oldestFirst = [...items].reverse();
    oldestFirst.forEach((c, i) => {
      expect(c.prevSignature).toBe(i === 0 ? '0'.repeat(64) : oldestFirst[i - 1]!.signature);
      expect(c.signature).toBe(expectedSignature(c));
      expect(c.keyId).toMatch(/^[0-9a-f]{16}$/);
      expect(Date.parse(c.time)).not.toBeNaN();
    });
    // Both logs together hold every checkpoint exactly once (one writer per checkpoint), as stored.
    await eventually(async () => loggedCheckpoints(a.logs() + b.logs()).length >= items.length);
    const logged = loggedCheckpoints(a.logs() + b.logs()).sort((x, y) => x.seq - y.seq);
    expect(logged).toEqual(oldestFirst.slice(0, logged.length));
    expect(logged.map((c) => c.seq)).toEqual(oldestFirst.map((c) => c.seq));
    // The key itself is in no log line.
    expect(a.logs() + b.logs()).not.toContain(audit.hex);
  });

  it('serves pages newest first with limit and before, behind the API token, and names bad parameters', async () => {
    const all = await allCheckpoints(a);
    const first = await httpJson('GET', `${a.url}/api/audit/checkpoints?limit=1`, undefined, auth);
    expect(first.body.items).toEqual(all.slice(0, 1));
    if (all.length > 1) {
      const next = await httpJson('GET', `${a.url}/api/audit/checkpoints?limit=1&before=${all[0]!.seq}`, undefined, auth);
      expect(next.body.items).toEqual(all.slice(1, 2));
    }
    expect((await httpJson('GET', `${a.url}/api/audit/checkpoints`)).status).toBe(401);
    const bad = await httpJson('GET', `${a.url}/api/audit/checkpoints?limit=0`, undefined, auth);
    expect(bad.status).toBe(400);
    expect(bad.body.details.map((d: { path: string }) => d.path).join(' ')).toMatch(/limit/);
  });

  it('a replica never signs over a chain cut after its checkpoint, and says so in the log', async () => {
    const runId = await startRun(a);
    const head = await finished(runId);
    await eventually(async () => (await checkpointedSeq(a, runId)) === head, 30_000);
    // The owner cuts the tail while the replicas run; another run keeps the writers busy.
    await db.pool.query('alter table timeline_events disable trigger user');
    await db.pool.query('delete from timeline_events where chain_id = $1 and seq = $2', [runId, head]);
    await db.pool.query('alter table timeline_events enable trigger user');
    const other = await startRun(b);
    const otherHead = await finished(other);
    await eventually(async () => (await checkpointedSeq(a, other)) === otherHead, 30_000);
    await eventually(async () => (a.logs() + b.logs()).includes(`timeline chain ${runId} no longer extends the head checkpoint`), 30_000);
    const signed = (await allCheckpoints(a)).flatMap((c) => c.heads.filter((h) => h.chain === runId));
    expect(signed.map((h) => h.seq)).toEqual([head]);
    const res = await runCli(['audit', 'verify', runId], { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: audit.hex });
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`BROKEN chain ${runId}: last event seq ${head - 1}`);
  });

  it('a replica started with another key says so at start-up', async () => {
    const other = testAuditKey();
    const c = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_API_TOKEN: API_TOKEN, FIREBREAK_AUDIT_KEY: other.hex, FIREBREAK_WORKERS: '0' });
    try {
      const line = c.logs().split('\n').find((l) => l.includes('differs from the key that signed the latest checkpoint'));
      expect(line).toBeDefined();
      expect(JSON.parse(line!)).toMatchObject({ level: 50, keyId: other.key.id, checkpointKeyId: audit.key.id });
    } finally {
      await c.stop();
    }
  });
});
