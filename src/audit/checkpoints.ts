/**
 * Signed checkpoints of the timeline's chain heads. Every interval one replica
 * (an advisory try-lock; the others skip) signs the heads of the chains that
 * moved since the last checkpoint, the database time and the previous
 * checkpoint's signature, stores that in `audit_checkpoints` (append-only),
 * and logs it as one line so a copy lives outside the database.
 * Off the hot path: it reads recent event ids through the primary key only.
 */
import type { Logger } from 'pino';
import { withTransaction, type Pool, type Queryable } from '../store/index.js';
import { canonicalJson, GENESIS_HASH } from '../timeline/index.js';
import type { AuditKey } from './key.js';
import {
  CHECKPOINT_STATE,
  CHECKPOINTS_NEWEST,
  HEADS_OF_CHECKPOINTS,
  INSERT_CHECKPOINT_HEADS,
  INSERT_CHECKPOINTS,
  LATEST_CHECKPOINT_KEY,
  MOVED_HEADS,
  TRY_CHECKPOINT_LOCK,
} from './queries.js';

/** Where one chain stood when a checkpoint was signed. */
export interface CheckpointHead {
  chain: string;
  seq: number;
  hash: string;
}

/** A checkpoint as stored, served, logged and exported. */
export interface Checkpoint {
  seq: number;
  /** Database time when it was signed (ISO 8601, UTC). */
  time: string;
  /** Signature of checkpoint seq - 1 (64 zeros for the first). */
  prevSignature: string;
  /** Heads of the chains that moved since the previous checkpoint, in chain order. */
  heads: CheckpointHead[];
  /** Digest of the legacy (pre-key) boundary, see migration 0014. */
  legacyDigest: string;
  /** Fingerprint of the key that signed it (not the key). */
  keyId: string;
  /** Hex HMAC-SHA256 under the audit key over the fields above (except keyId). */
  signature: string;
}

/**
 * Heads per checkpoint: keeps each log line near 13 KB, under the 16 KB at
 * which container runtimes split a line. More moved chains make several
 * checkpoints in one go.
 */
export const HEADS_PER_CHECKPOINT = 100;

/** Chain ids in code-unit order: the order heads are signed in (the same in JS everywhere, unlike a database collation). */
export function byChain(a: CheckpointHead, b: CheckpointHead): number {
  return a.chain < b.chain ? -1 : a.chain > b.chain ? 1 : 0;
}

export function signCheckpoint(key: AuditKey, c: Omit<Checkpoint, 'signature' | 'keyId'>): string {
  const signed = { v: 1, seq: c.seq, time: c.time, prevSignature: c.prevSignature, heads: c.heads.map((h) => ({ chain: h.chain, seq: h.seq, hash: h.hash })), legacyDigest: c.legacyDigest };
  return key.mac('firebreak.checkpoint.v1\n', canonicalJson(signed));
}

interface CheckpointRow {
  seq: number;
  time: Date;
  prev_signature: string;
  heads_count: number;
  legacy_digest: string;
  key_id: string;
  signature: string;
}

interface HeadRow {
  checkpoint: number;
  chain_id: string;
  seq: number;
  hash: string;
}

/** Attach each checkpoint's heads (one query for the page). */
export async function withHeads(db: Queryable, rows: CheckpointRow[]): Promise<Checkpoint[]> {
  if (rows.length === 0) return [];
  const { rows: heads } = await db.query<HeadRow>(HEADS_OF_CHECKPOINTS, [rows.map((r) => r.seq)]);
  const byCheckpoint = new Map<number, CheckpointHead[]>();
  for (const h of heads) {
    const list = byCheckpoint.get(h.checkpoint) ?? [];
    list.push({ chain: h.chain_id, seq: h.seq, hash: h.hash });
    byCheckpoint.set(h.checkpoint, list);
  }
  return rows.map((r) => ({
    seq: r.seq,
    time: r.time.toISOString(),
    prevSignature: r.prev_signature,
    heads: (byCheckpoint.get(r.seq) ?? []).sort(byChain),
    legacyDigest: r.legacy_digest,
    keyId: r.key_id,
    signature: r.signature,
  }));
}

/** Checkpoints newest first (GET /api/audit/checkpoints). */
export async function listCheckpoints(db: Queryable, options: { limit: number; before?: number | undefined }): Promise<Checkpoint[]> {
  const { rows } = await db.query<CheckpointRow>(CHECKPOINTS_NEWEST, [options.limit, options.before ?? null]);
  return withHeads(db, rows);
}

interface StateRow {
  now: Date;
  last_seq: number | null;
  last_signature: string | null;
  too_soon: boolean;
  scan_from: number;
  through: number;
  legacy_digest: string | null;
}

interface MovedRow {
  chain_id: string;
  seq: number;
  hash: string;
  last_checkpoint: number | null;
  last_seq: number | null;
  last_hash: string | null;
  hash_at_last: string | null;
}

/** A chain that no longer extends the head a checkpoint signed: cut or rewritten since. Never signed over. */
export interface DivergedChain {
  chain: string;
  checkpoint: number;
  checkpointed: { seq: number; hash: string };
  now: { seq: number; hash: string };
}

export interface CheckpointRound {
  written: Checkpoint[];
  diverged: DivergedChain[];
}

/**
 * Sign and store checkpoints for every chain that moved, unless another
 * replica is writing one or wrote one less than `minSpacingMs` ago. A chain
 * that moved backwards or sideways (its checkpointed head is gone or changed)
 * is left out and returned as diverged: the writer never launders tampering.
 */
export async function writeCheckpoints(pool: Pool, key: AuditKey, options: { minSpacingMs: number; lookbackMs: number }): Promise<CheckpointRound> {
  const nothing: CheckpointRound = { written: [], diverged: [] };
  return withTransaction(pool, async (client) => {
    const { rows: lock } = await client.query<{ locked: boolean }>(TRY_CHECKPOINT_LOCK);
    if (!lock[0]?.locked) return nothing;
    const state = (await client.query<StateRow>(CHECKPOINT_STATE, [options.minSpacingMs, options.lookbackMs])).rows[0]!;
    if (state.too_soon) return nothing;
    if (!state.legacy_digest) throw new Error('timeline_legacy_seal is empty (was it removed by the table owner?): cannot sign checkpoints; run `firebreak audit verify`');
    const { rows: moved } = await client.query<MovedRow>(MOVED_HEADS, [state.scan_from]);
    const diverged: DivergedChain[] = [];
    const heads: CheckpointHead[] = [];
    for (const r of moved) {
      if (r.last_checkpoint !== null && (r.seq < r.last_seq! || r.hash_at_last !== r.last_hash)) {
        diverged.push({ chain: r.chain_id, checkpoint: r.last_checkpoint, checkpointed: { seq: r.last_seq!, hash: r.last_hash! }, now: { seq: r.seq, hash: r.hash } });
      } else {
        heads.push({ chain: r.chain_id, seq: r.seq, hash: r.hash });
      }
    }
    heads.sort(byChain);
    if (heads.length === 0) return { written: [], diverged };
    const time = state.now.toISOString();
    const written: Checkpoint[] = [];
    let seq = state.last_seq ?? 0;
    let prevSignature = state.last_signature ?? GENESIS_HASH;
    for (let i = 0; i < heads.length; i += HEADS_PER_CHECKPOINT) {
      const unsigned = { seq: ++seq, time, prevSignature, heads: heads.slice(i, i + HEADS_PER_CHECKPOINT), legacyDigest: state.legacy_digest };
      const signature = signCheckpoint(key, unsigned);
      written.push({ ...unsigned, keyId: key.id, signature });
      prevSignature = signature;
    }
    await client.query(INSERT_CHECKPOINTS, [
      written.map((c) => c.seq),
      written.map((c) => c.time),
      written.map((c) => c.prevSignature),
      written.map((c) => c.heads.length),
      written.map((c) => c.legacyDigest),
      written.map((c) => c.keyId),
      written.map((c) => c.signature),
      written.map(() => state.through),
    ]);
    const flat = written.flatMap((c) => c.heads.map((h) => ({ checkpoint: c.seq, ...h })));
    await client.query(INSERT_CHECKPOINT_HEADS, [flat.map((h) => h.checkpoint), flat.map((h) => h.chain), flat.map((h) => h.seq), flat.map((h) => h.hash)]);
    return { written, diverged };
  });
}

/**
 * Runs writeCheckpoints every `intervalMs` on this replica and logs each
 * checkpoint as one `audit checkpoint` line at info level, whatever LOG_LEVEL
 * says (short of `silent`): that line is the copy kept outside the database.
 */
export class CheckpointWriter {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private readonly log: Logger;

  constructor(
    private readonly options: { pool: Pool; key: AuditKey; logger: Logger; intervalMs: number },
  ) {
    const parent = options.logger;
    this.log = parent.child({ component: 'audit' }, { level: parent.level === 'silent' ? 'silent' : 'info' });
  }

  /** Warn when the latest checkpoint was signed by another key (replicas must share one), then tick every interval. */
  async start(): Promise<void> {
    const { rows } = await this.options.pool.query<{ seq: number; key_id: string }>(LATEST_CHECKPOINT_KEY);
    const latest = rows[0];
    if (latest && latest.key_id !== this.options.key.id) {
      this.options.logger.error(
        { keyId: this.options.key.id, checkpointKeyId: latest.key_id, checkpoint: latest.seq, keySource: this.options.key.source },
        'the audit key differs from the key that signed the latest checkpoint: every replica (and audit verify) must use the same FIREBREAK_AUDIT_KEY, or events written now will not verify',
      );
    }
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs);
    this.timer.unref();
  }

  /** One round; never throws (a failed round is logged and the next one tries again). */
  tick(): Promise<Checkpoint[]> {
    if (this.running) return Promise.resolve([]);
    const round = this.round(this.options.intervalMs / 2).finally(() => (this.running = undefined));
    this.running = round;
    return round;
  }

  private async round(minSpacingMs: number): Promise<Checkpoint[]> {
    const lookbackMs = Math.max(300_000, this.options.intervalMs * 3);
    try {
      const { written, diverged } = await writeCheckpoints(this.options.pool, this.options.key, { minSpacingMs, lookbackMs });
      for (const checkpoint of written) this.log.info({ checkpoint }, 'audit checkpoint');
      for (const d of diverged) {
        this.log.error({ diverged: d }, `timeline chain ${d.chain} no longer extends the head checkpoint #${d.checkpoint} signed (seq ${d.checkpointed.seq}; now seq ${d.now.seq}): events were removed or rewritten; run \`firebreak audit verify ${d.chain}\``);
      }
      return written;
    } catch (err) {
      this.options.logger.warn({ err: (err as Error).message }, 'audit checkpoint failed; retrying next interval');
      return [];
    }
  }

  /** Stop ticking; a last checkpoint seals what this replica wrote before it goes. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    await this.round(0);
  }
}
