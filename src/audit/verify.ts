/**
 * `firebreak audit verify`: recompute the timeline's chains under the audit
 * key and check them against everything else that says how they should look:
 *
 * - each event's HMAC and its link to the one before (an edited event, a
 *   removed middle event, a chain re-hashed without the key);
 * - the `runs` table: a run it calls finished must still hold its terminal
 *   `run.<status>` event, and every run must have a chain (removed tails);
 * - signed checkpoints, stored and exported: a chain shorter than a
 *   checkpoint says it was, or with another hash at that position, was cut or
 *   rewritten after the checkpoint (even by someone with the key, when the
 *   checkpoints come from outside the database);
 * - the legacy boundary: chain prefixes written before keyed hashing are
 *   checked as plain SHA-256 up to the boundary frozen by migration 0014, and
 *   reported as unkeyed.
 *
 * Everything is read in pages inside one repeatable-read snapshot, so a
 * large database neither sits in memory nor changes under the check.
 */
import { createHash } from 'node:crypto';
import { withTransaction, type Pool, type Queryable } from '../store/index.js';
import { GENESIS_HASH, hashEvent, legacyHashEvent, rowToEvent, type EventRow, type HashedEvent, type TimelineEvent } from '../timeline/index.js';
import { signCheckpoint, withHeads, type Checkpoint } from './checkpoints.js';
import type { AuditKey } from './key.js';
import {
  CHECKPOINTED_CHAINS_WITHOUT_EVENTS,
  CHECKPOINTED_HEADS_OF,
  CHECKPOINTS_AFTER,
  CHECKPOINTS_BY_SEQ,
  COUNT_EVENTS,
  EVENTS_PAGE,
  EVENTS_PAGE_OF_CHAIN,
  LEGACY_CHAINS_WITHOUT_EVENTS,
  LEGACY_HEADS_OF,
  LEGACY_HEADS_PAGE,
  LEGACY_SEAL,
  NEWEST_CHECKPOINT,
  RUN_STATUS_OF,
  RUNS_WITHOUT_EVENTS,
} from './queries.js';

/** The first problem found in one chain, named by run (chain) and event. */
export interface BrokenEvent {
  chainId: string;
  seq: number | null;
  id: number | null;
  kind: string | null;
  problem: string;
}

/** A problem with something other than a chain: a checkpoint, the legacy boundary. */
export interface BrokenRecord {
  what: string;
  problem: string;
}

export interface VerifyReport {
  chains: number;
  events: number;
  /** Events checked as unkeyed SHA-256 (written before keyed hashing). */
  legacy: { chains: number; events: number };
  checkpoints: { stored: number; latest: { seq: number; time: string } | null; external: number };
  keyId: string;
  broken: BrokenEvent[];
  brokenRecords: BrokenRecord[];
  /** Facts worth printing that are not failures. */
  notes: string[];
}

export interface VerifyOptions {
  key: AuditKey;
  /** One chain (a run id, or `system`); default: the whole database. */
  chainId?: string;
  /** Checkpoints kept outside the database, e.g. parsed from an export or the logs. */
  external?: { source: string; checkpoints: Checkpoint[] };
  pageSize?: number;
  onProgress?: (checked: number, total: number) => void;
}

const TERMINAL = new Set(['succeeded', 'failed', 'aborted', 'cancelled']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A position a checkpoint (stored or exported) fixed in one chain. */
interface ExpectedHead {
  seq: number;
  hash: string;
  label: string;
}

interface ChainContext {
  legacy?: { seq: number; hash: string };
  expected: ExpectedHead[];
  runStatus?: string;
}

interface ChainState extends ChainContext {
  chainId: string;
  expectedSeq: number;
  expectedPrev: string;
  broken: boolean;
  terminalSeen: boolean;
  last: TimelineEvent | undefined;
}

function checkpointLabel(seq: number, time: string, source?: string): string {
  return `checkpoint #${seq}${source ? ` in ${source}` : ''} (signed ${time})`;
}

/** Verify a checkpoint's own signature; the problem, or undefined. */
function checkpointProblem(key: AuditKey, c: Checkpoint): string | undefined {
  if (signCheckpoint(key, c) === c.signature) return undefined;
  return c.keyId !== key.id
    ? `signature does not verify: it was signed by key ${c.keyId}, this is key ${key.id} (wrong FIREBREAK_AUDIT_KEY or data dir?)`
    : 'signature does not verify: the checkpoint was altered';
}

class Verifier {
  readonly report: VerifyReport;
  /** Stored checkpoints whose signature or link failed: already reported, never trusted. */
  private readonly untrusted = new Set<number>();
  private readonly trusted = new Set<number>();
  /** Exported heads per chain, and which chains were seen. */
  private readonly externalHeads = new Map<string, ExpectedHead[]>();
  private readonly seen = new Set<string>();
  private sealDigest: string | undefined;
  private legacySealed = false;

  constructor(
    private readonly db: Queryable,
    private readonly options: VerifyOptions,
  ) {
    this.report = {
      chains: 0,
      events: 0,
      legacy: { chains: 0, events: 0 },
      checkpoints: { stored: 0, latest: null, external: options.external?.checkpoints.length ?? 0 },
      keyId: options.key.id,
      broken: [],
      brokenRecords: [],
      notes: [],
    };
  }

  private record(what: string, problem: string): void {
    this.report.brokenRecords.push({ what, problem });
  }

  private get whole(): boolean {
    return this.options.chainId === undefined;
  }

  /** The legacy boundary's seal: one row, and (whole database) its digest recomputed from the boundary rows. */
  async checkLegacySeal(): Promise<void> {
    const { rows } = await this.db.query<{ chains: number; digest: string }>(LEGACY_SEAL);
    if (rows.length !== 1) {
      this.record('legacy boundary', `timeline_legacy_seal holds ${rows.length} rows instead of 1 (changed by the table owner)`);
      return;
    }
    this.sealDigest = rows[0]!.digest;
    // Recomputed for one chain too: the boundary decides which events need no key, so it is checked whatever is asked.
    const digest = createHash('sha256');
    let chains = 0;
    let cursor = '';
    for (;;) {
      const page = await this.db.query<{ chain_id: string; seq: number; hash: string }>(LEGACY_HEADS_PAGE, [cursor, 10_000]);
      for (const r of page.rows) digest.update(`${chains++ === 0 ? '' : '\n'}${r.chain_id} ${r.seq} ${r.hash}`);
      if (page.rows.length < 10_000) break;
      cursor = page.rows[page.rows.length - 1]!.chain_id;
    }
    const computed = digest.digest('hex');
    if (computed !== rows[0]!.digest || chains !== rows[0]!.chains)
      this.record('legacy boundary', `timeline_legacy_heads no longer matches the seal written at upgrade (${chains} chains now, ${rows[0]!.chains} sealed): changed by the table owner`);
  }

  /** Whole database: every stored checkpoint, in order: numbering, links, signatures, legacy digest. */
  async checkStoredCheckpoints(): Promise<void> {
    let expectedSeq = 1;
    let prevSignature = GENESIS_HASH;
    for (;;) {
      const { rows } = await this.db.query(CHECKPOINTS_AFTER, [expectedSeq - 1, 200]);
      const page = await withHeads(this.db, rows);
      for (const c of page) {
        const what = `checkpoint #${c.seq}`;
        let problem: string | undefined;
        if (c.seq !== expectedSeq) problem = `${c.seq - 1 === expectedSeq ? `checkpoint #${expectedSeq} is` : `checkpoints #${expectedSeq}..#${c.seq - 1} are`} missing before it (removed by the table owner)`;
        else if (c.prevSignature !== prevSignature) problem = `does not name the signature of checkpoint #${c.seq - 1} (the checkpoints were rewritten)`;
        problem ??= checkpointProblem(this.options.key, c);
        if (!problem && this.sealDigest && c.legacyDigest !== this.sealDigest) problem = 'signs another legacy boundary than the one stored (the legacy tables were changed)';
        if (problem) {
          this.record(what, problem);
          this.untrusted.add(c.seq);
        } else {
          this.trusted.add(c.seq);
          this.legacySealed = true;
        }
        this.report.checkpoints.stored++;
        this.report.checkpoints.latest = { seq: c.seq, time: c.time };
        expectedSeq = c.seq + 1;
        prevSignature = c.signature;
      }
      if (page.length < 200) break;
    }
  }

  /**
   * One chain: the newest stored checkpoint, checked like the whole-database
   * verify checks them all, says whether the legacy boundary is the one it
   * signed (every checkpoint signs the same boundary, frozen at upgrade).
   */
  async checkNewestCheckpoint(): Promise<void> {
    const [c] = await withHeads(this.db, (await this.db.query(NEWEST_CHECKPOINT)).rows);
    if (!c) return;
    const problem = checkpointProblem(this.options.key, c) ?? (this.sealDigest && c.legacyDigest !== this.sealDigest ? 'signs another legacy boundary than the one stored (the legacy tables were changed)' : undefined);
    if (problem) {
      this.record(`checkpoint #${c.seq}`, problem);
      this.untrusted.add(c.seq);
      return;
    }
    this.trusted.add(c.seq);
    this.legacySealed = true;
  }

  /** One chain: trust a stored checkpoint only after checking its signature (done once per checkpoint). */
  private async isTrusted(seq: number): Promise<boolean> {
    if (this.trusted.has(seq)) return true;
    if (this.untrusted.has(seq)) return false;
    const [c] = await withHeads(this.db, (await this.db.query(CHECKPOINTS_BY_SEQ, [[seq]])).rows);
    const problem = c ? checkpointProblem(this.options.key, c) : 'missing';
    if (problem) {
      this.record(`checkpoint #${seq}`, problem);
      this.untrusted.add(seq);
      return false;
    }
    this.trusted.add(seq);
    return true;
  }

  /** Exported checkpoints: each must verify, and match the stored checkpoint of the same number. */
  async checkExternalCheckpoints(): Promise<void> {
    const external = this.options.external;
    if (!external) return;
    const seqs = [...new Set(external.checkpoints.map((c) => c.seq))];
    const stored = new Map<number, { signature: string }>();
    for (let i = 0; i < seqs.length; i += 1_000) {
      const { rows } = await this.db.query<{ seq: number; signature: string }>(CHECKPOINTS_BY_SEQ, [seqs.slice(i, i + 1_000)]);
      for (const r of rows) stored.set(r.seq, r);
    }
    for (const c of external.checkpoints) {
      const what = `checkpoint #${c.seq} in ${external.source}`;
      const problem = checkpointProblem(this.options.key, c);
      if (problem) {
        this.record(what, problem);
        continue;
      }
      const inDb = stored.get(c.seq);
      if (!inDb) this.record(what, 'is missing from the database (checkpoints were removed)');
      else if (inDb.signature !== c.signature) this.record(what, 'differs from the stored checkpoint of the same number (the stored checkpoints were rewritten)');
      for (const h of c.heads) {
        if (!this.whole && h.chain !== this.options.chainId) continue;
        const list = this.externalHeads.get(h.chain) ?? [];
        list.push({ seq: h.seq, hash: h.hash, label: checkpointLabel(c.seq, c.time, external.source) });
        this.externalHeads.set(h.chain, list);
      }
    }
  }

  /** What the legacy boundary, stored checkpoints, exported checkpoints and `runs` say about these chains. */
  private async contextFor(chainIds: string[]): Promise<Map<string, ChainContext>> {
    const context = new Map<string, ChainContext>(chainIds.map((id) => [id, { expected: [] }]));
    // One client, one snapshot: these run one after another.
    const legacy = await this.db.query<{ chain_id: string; seq: number; hash: string }>(LEGACY_HEADS_OF, [chainIds]);
    const checkpointed = await this.db.query<{ chain_id: string; checkpoint: number; seq: number; hash: string; time: Date }>(CHECKPOINTED_HEADS_OF, [chainIds]);
    const runs = await this.db.query<{ id: string; status: string }>(RUN_STATUS_OF, [chainIds.filter((id) => UUID.test(id))]);
    for (const r of legacy.rows) context.get(r.chain_id)!.legacy = { seq: r.seq, hash: r.hash };
    for (const r of checkpointed.rows) {
      if (await this.isTrusted(r.checkpoint)) context.get(r.chain_id)!.expected.push({ seq: r.seq, hash: r.hash, label: checkpointLabel(r.checkpoint, r.time.toISOString()) });
    }
    for (const r of runs.rows) context.get(r.id)!.runStatus = r.status;
    for (const id of chainIds) context.get(id)!.expected.push(...(this.externalHeads.get(id) ?? []));
    return context;
  }

  private fail(state: ChainState, event: TimelineEvent | undefined, problem: string): void {
    state.broken = true;
    this.report.broken.push({ chainId: state.chainId, seq: event?.seq ?? null, id: event?.id ?? null, kind: event?.kind ?? null, problem });
  }

  private checkEvent(state: ChainState, event: TimelineEvent): string | undefined {
    if (event.seq !== state.expectedSeq) return `sequence gap: expected seq ${state.expectedSeq}, found ${event.seq} (events were removed)`;
    if (event.prevHash !== state.expectedPrev) return `prev_hash does not match the hash of event ${state.expectedSeq - 1}`;
    const hashed: HashedEvent = { chainId: event.chainId, seq: event.seq, runId: event.runId, time: event.time, kind: event.kind, actor: event.actor, data: event.data, prevHash: event.prevHash };
    if (state.legacy && event.seq <= state.legacy.seq) {
      if (legacyHashEvent(hashed) !== event.hash) return 'hash does not match the event contents (unkeyed legacy event; the event was altered)';
      if (event.seq === state.legacy.seq && event.hash !== state.legacy.hash) return 'differs from the legacy boundary frozen at upgrade (the legacy prefix was rewritten)';
      this.report.legacy.events++;
    } else if (hashEvent(hashed, this.options.key) !== event.hash) {
      return legacyHashEvent(hashed) === event.hash
        ? 'hashed with plain SHA-256 where the audit key was in use: the chain was re-hashed by someone without the key'
        : `hash does not match the event contents under audit key ${this.options.key.id} (the event was altered, or re-hashed without the key)`;
    }
    for (const head of state.expected) {
      if (head.seq === event.seq && head.hash !== event.hash) return `hash differs from the one ${head.label} recorded for seq ${head.seq}: the chain was rewritten after that checkpoint`;
    }
    return undefined;
  }

  /** Checks that need the whole chain: nothing cut from its end. */
  private endChain(state: ChainState): void {
    this.seen.add(state.chainId);
    if (state.legacy) this.report.legacy.chains++;
    if (state.broken || !state.last) return;
    const lastSeq = state.last.seq;
    const cut = (what: string) => this.fail(state, state.last, `chain ends at seq ${lastSeq} (${state.last!.kind}) but ${what}: events were removed from the end`);
    const longest = state.expected.reduce<ExpectedHead | undefined>((a, h) => (!a || h.seq > a.seq ? h : a), undefined);
    if (longest && longest.seq > lastSeq) return cut(`${longest.label} recorded seq ${longest.seq}`);
    if (state.legacy && state.legacy.seq > lastSeq) return cut(`the legacy boundary frozen at upgrade recorded seq ${state.legacy.seq}`);
    if (state.runStatus && TERMINAL.has(state.runStatus) && !state.terminalSeen) return cut(`runs says the run ${state.runStatus} and its run.${state.runStatus} event is gone`);
  }

  async checkChains(): Promise<void> {
    const pageSize = this.options.pageSize ?? 5_000;
    const chainId = this.options.chainId;
    const total = Number((await this.db.query<{ n: number }>(COUNT_EVENTS, [chainId ?? null])).rows[0]?.n ?? 0);
    let state: ChainState | undefined;
    let cursor: [string, number] = [chainId ?? '', 0];
    for (;;) {
      const { rows } = chainId
        ? await this.db.query<EventRow>(EVENTS_PAGE_OF_CHAIN, [chainId, cursor[1], pageSize])
        : await this.db.query<EventRow>(EVENTS_PAGE, [cursor[0], cursor[1], pageSize]);
      const fresh = [...new Set(rows.map((r) => r.chain_id))].filter((id) => id !== state?.chainId);
      const context = fresh.length > 0 ? await this.contextFor(fresh) : new Map<string, ChainContext>();
      for (const row of rows) {
        const event = rowToEvent(row);
        if (event.chainId !== state?.chainId) {
          if (state) this.endChain(state);
          state = { chainId: event.chainId, expectedSeq: 1, expectedPrev: GENESIS_HASH, broken: false, terminalSeen: false, last: undefined, ...context.get(event.chainId)! };
          this.report.chains++;
        }
        this.report.events++;
        if (!state.broken) {
          const problem = this.checkEvent(state, event);
          if (problem) this.fail(state, event, problem);
        }
        if (state.runStatus && event.kind === `run.${state.runStatus}`) state.terminalSeen = true;
        state.expectedSeq = event.seq + 1;
        state.expectedPrev = event.hash;
        state.last = event;
      }
      this.options.onProgress?.(this.report.events, total);
      const last = rows[rows.length - 1];
      if (rows.length < pageSize || !last) break;
      cursor = [last.chain_id, last.seq];
    }
    if (state) this.endChain(state);
  }

  /** Chains that runs, a checkpoint or the legacy boundary remember, with no event left at all. */
  async checkVanishedChains(): Promise<void> {
    const chainId = this.options.chainId ?? null;
    const gone = (id: string, problem: string) => this.report.broken.push({ chainId: id, seq: null, id: null, kind: null, problem: `no events left, but ${problem}: the whole chain was removed` });
    const reported = new Set<string>();
    const checkpointed = await this.db.query<{ chain_id: string; checkpoint: number; seq: number; time: Date }>(CHECKPOINTED_CHAINS_WITHOUT_EVENTS, [chainId]);
    for (const r of checkpointed.rows) {
      if (reported.has(r.chain_id) || !(await this.isTrusted(r.checkpoint))) continue;
      reported.add(r.chain_id);
      gone(r.chain_id, `${checkpointLabel(r.checkpoint, r.time.toISOString())} recorded seq ${r.seq}`);
    }
    for (const [id, heads] of this.externalHeads) {
      if (this.seen.has(id) || reported.has(id)) continue;
      reported.add(id);
      const longest = heads.reduce((a, h) => (h.seq > a.seq ? h : a));
      gone(id, `${longest.label} recorded seq ${longest.seq}`);
    }
    const legacy = await this.db.query<{ chain_id: string; seq: number }>(LEGACY_CHAINS_WITHOUT_EVENTS, [chainId]);
    for (const r of legacy.rows) {
      if (reported.has(r.chain_id)) continue;
      reported.add(r.chain_id);
      gone(r.chain_id, `the legacy boundary frozen at upgrade recorded seq ${r.seq}`);
    }
    const runs = await this.db.query<{ chain_id: string; status: string }>(RUNS_WITHOUT_EVENTS, [chainId]);
    for (const r of runs.rows) {
      if (reported.has(r.chain_id)) continue;
      reported.add(r.chain_id);
      gone(r.chain_id, `runs holds this run (${r.status}), and every run is created with its first events`);
    }
  }

  /**
   * Unkeyed events count only under a boundary a verified checkpoint signs:
   * the boundary tables and their seal are plain data, so the table owner
   * could otherwise re-hash any chain with SHA-256 (no key needed), declare
   * it legacy and re-seal it, after removing the checkpoints that would say so.
   */
  checkLegacyIsSigned(): void {
    const { legacy } = this.report;
    if (legacy.events === 0 || this.legacySealed) return;
    this.record(
      'legacy boundary',
      `${legacy.events} unkeyed event(s) in ${legacy.chains} chain(s) rest on it, but no verified checkpoint signs it, so it cannot be told from a boundary the table owner wrote (checkpoints removed, or none written since the upgrade); start the server, which signs one within FIREBREAK_AUDIT_CHECKPOINT_MS, and verify again`,
    );
  }

  notes(): void {
    const { legacy, checkpoints } = this.report;
    if (legacy.events > 0 && this.legacySealed) this.report.notes.push(`${legacy.events} event(s) in ${legacy.chains} chain(s) were written before keyed hashing: checked as unkeyed SHA-256 up to the boundary frozen at upgrade, which a verified checkpoint signs`);
    if (this.whole && checkpoints.stored === 0) this.report.notes.push('no checkpoints stored yet: removing events from the end of an unfinished run cannot be detected until the first one');
  }
}

/**
 * Verify the audit trail (one chain or all of them) in one read-only snapshot.
 * Reports the first broken event of each chain and every broken checkpoint.
 */
export async function verifyAudit(pool: Pool, options: VerifyOptions): Promise<VerifyReport> {
  return withTransaction(
    pool,
    async (client) => {
      const verifier = new Verifier(client, options);
      await verifier.checkLegacySeal();
      if (options.chainId === undefined) await verifier.checkStoredCheckpoints();
      else await verifier.checkNewestCheckpoint();
      await verifier.checkExternalCheckpoints();
      await verifier.checkChains();
      await verifier.checkVanishedChains();
      verifier.checkLegacyIsSigned();
      verifier.notes();
      return verifier.report;
    },
    { begin: 'begin isolation level repeatable read read only' },
  );
}

/** True when nothing in the report is broken. */
export function auditPassed(report: VerifyReport): boolean {
  return report.broken.length === 0 && report.brokenRecords.length === 0;
}
