import type { AuditKey } from '../audit/index.js';
import type { Queryable } from '../store/index.js';
import { GENESIS_HASH, hashEvent, type HashedEvent } from './hash.js';
import { CHAIN_HEAD, CHAIN_PAGE_NEWEST, EVENTS_OF_CHAIN, INSERT_EVENTS, LOCK_CHAIN } from './queries.js';

/** The chain holding events that belong to no run. */
export const SYSTEM_CHAIN = 'system';

export interface NewEvent {
  kind: string;
  actor: string;
  data?: Record<string, unknown>;
  /** Defaults to now. */
  time?: Date;
}

export interface TimelineEvent {
  id: number;
  chainId: string;
  seq: number;
  runId: string | null;
  time: string;
  kind: string;
  actor: string;
  data: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

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
  };
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
  options: { locked?: boolean; head?: ChainHead | null } = {},
): Promise<TimelineEvent[]> {
  if (events.length === 0) return [];
  if (!options.locked) await client.query(LOCK_CHAIN, [chainId]);
  // A caller holding the lock may already know the head (read after locking); null means a new chain.
  const head = options.head !== undefined ? options.head : (await client.query<ChainHead>(CHAIN_HEAD, [chainId])).rows[0];
  const built = linkEvents(key, chainId, runId, head?.seq ?? 0, head?.hash ?? GENESIS_HASH, events);
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
  return built.map((e, i) => ({ ...e, id: result.rows[i]!.id, data: e.data as Record<string, unknown> }));
}

/** Number and hash events after (seq, prevHash), each linked to the one before. */
function linkEvents(key: AuditKey, chainId: string, runId: string | null, seq: number, prevHash: string, events: NewEvent[]): Array<HashedEvent & { hash: string }> {
  return events.map((event) => {
    const hashed: HashedEvent = {
      chainId,
      seq: ++seq,
      runId,
      time: (event.time ?? new Date()).toISOString(),
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

/**
 * Build the first events of a brand-new chain without touching the database,
 * so callers can insert them in the same statement that creates the run.
 */
export function buildGenesisEvents(key: AuditKey, chainId: string, runId: string | null, events: NewEvent[]): Array<HashedEvent & { hash: string }> {
  return linkEvents(key, chainId, runId, 0, GENESIS_HASH, events);
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
