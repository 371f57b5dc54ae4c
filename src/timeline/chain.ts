import type { AuditKey } from '../audit/index.js';
import type { Queryable } from '../store/index.js';
import type { NewEvent, TimelineEvent } from './events.js';
import { GENESIS_HASH, hashEvent, type HashedEvent } from './hash.js';
import { CHAIN_HEAD, CHAIN_PAGE_NEWEST, EVENTS_OF_CHAIN, INSERT_EVENTS, LOCK_CHAIN } from './queries.js';

/** The chain holding events that belong to no run. */
export const SYSTEM_CHAIN = 'system';

/** An event hashed onto its chain, ready to insert. */
export type LinkedEvent = HashedEvent & { hash: string };

export interface EventRow {
  id: number;
  chain_id: string;
  seq: number;
  run_id: string | null;
  time: Date;
  kind: string;
  actor: string;
  data: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

/** Stored rows are trusted to match their kind (only this module's writers insert them). */
export function rowToEvent(row: EventRow): TimelineEvent {
  return {
    id: row.id,
    chainId: row.chain_id,
    seq: row.seq,
    runId: row.run_id,
    time: row.time.toISOString(),
    kind: row.kind,
    actor: row.actor,
    data: row.data,
    prevHash: row.prev_hash,
    hash: row.hash,
  } as TimelineEvent;
}

/**
 * Append events to one chain. Must run inside the caller's transaction: the
 * advisory lock is held until it commits, so concurrent writers queue up and
 * the chain never forks (the unique (chain_id, seq) key backs this up).
 * `data` must already be redacted.
 */
export interface ChainHead {
  seq: number;
  hash: string;
}

export async function appendToChain(
  client: Queryable,
  key: AuditKey,
  chainId: string,
  runId: string | null,
  events: NewEvent[],
  options: { locked?: boolean; head?: ChainHead | null; now: () => Date },
): Promise<TimelineEvent[]> {
  if (events.length === 0) return [];
  if (!options.locked) await client.query(LOCK_CHAIN, [chainId]);
  // A caller holding the lock may already know the head (read after locking); null means a new chain.
  const head = options.head !== undefined ? options.head : (await client.query<ChainHead>(CHAIN_HEAD, [chainId])).rows[0];
  const built = linkEvents(key, chainId, runId, head ?? null, events, options.now);
  const result = await client.query<{ id: number }>(INSERT_EVENTS, [
    built.map((e) => e.chainId),
    built.map((e) => e.seq),
    built.map((e) => e.runId),
    built.map((e) => e.time),
    built.map((e) => e.kind),
    built.map((e) => e.actor),
    built.map((e) => JSON.stringify(e.data)),
    built.map((e) => e.prevHash),
    built.map((e) => e.hash),
  ]);
  return built.map((e, i) => ({ ...e, id: result.rows[i]!.id }) as TimelineEvent);
}

/**
 * Number and hash events after a chain head (null: a new chain), each linked to
 * the one before, under the audit key. Events without a time get `now()` (the database clock as the
 * app last read it: the time is hashed, so it is fixed before the insert).
 */
export function linkEvents(key: AuditKey, chainId: string, runId: string | null, head: ChainHead | null, events: readonly NewEvent[], now: () => Date): LinkedEvent[] {
  let seq = head?.seq ?? 0;
  let prevHash = head?.hash ?? GENESIS_HASH;
  return events.map((event) => {
    const hashed: HashedEvent = {
      chainId,
      seq: ++seq,
      runId,
      time: (event.time ?? now()).toISOString(),
      kind: event.kind,
      actor: event.actor,
      data: event.data ?? {},
      prevHash,
    };
    const hash = hashEvent(hashed, key);
    prevHash = hash;
    return { ...hashed, hash };
  });
}

/** Linked events as rows for `jsonb_to_recordset` (the column names of timeline_events). */
export function eventRecords(events: readonly LinkedEvent[]): Array<Record<string, unknown>> {
  return events.map((e) => ({ chain_id: e.chainId, seq: e.seq, run_id: e.runId, time: e.time, kind: e.kind, actor: e.actor, data: e.data, prev_hash: e.prevHash, hash: e.hash }));
}

/** The newest events of a chain, `limit` at most, before seq `before` when given (paging back). */
export async function readChainPage(db: Queryable, chainId: string, options: { limit: number; before?: number | undefined }): Promise<TimelineEvent[]> {
  const { rows } = await db.query<EventRow>(CHAIN_PAGE_NEWEST, [chainId, options.limit, options.before ?? null]);
  return rows.map(rowToEvent);
}

export async function readChain(db: Queryable, chainId: string): Promise<TimelineEvent[]> {
  const { rows } = await db.query<EventRow>(EVENTS_OF_CHAIN, [chainId]);
  return rows.map(rowToEvent);
}

/**
 * SQL (simple protocol, literals already escaped) that takes a chain's lock and
 * then reads its head, for callers that batch it with other statements in one
 * round trip. Same lock key as LOCK_CHAIN.
 */
export function lockAndReadHeadSql(chainLiteral: string): [lock: string, head: string] {
  return [
    `select pg_advisory_xact_lock(7270, hashtext(${chainLiteral}))`,
    `select seq, hash from timeline_events where chain_id = ${chainLiteral} order by seq desc limit 1`,
  ];
}
