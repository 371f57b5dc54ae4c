import type { AuditKey } from '../audit/index.js';
import type { Queryable } from '../store/index.js';
import { appendToChain, buildGenesisEvents, SYSTEM_CHAIN, type ChainHead, type NewEvent, type TimelineEvent } from './chain.js';
import { createRedactor } from './redact.js';
import { LOCK_CHAIN } from './queries.js';

export { readChain, readChainPage, rowToEvent, lockAndReadHeadSql, SYSTEM_CHAIN, type ChainHead, type EventRow, type NewEvent, type TimelineEvent } from './chain.js';
export { GENESIS_HASH, canonicalJson, hashEvent, legacyHashEvent, sha256Hex, type HashedEvent } from './hash.js';
export { createRedactor, REDACTED } from './redact.js';

/** The chain holding access decisions, token and session events that belong to no run. */
export const ACCESS_CHAIN = 'access';

/**
 * The one way events are written: every `data` passes through the secret
 * redactor before it is hashed and stored.
 */
export class Timeline {
  readonly redact: (value: unknown) => unknown;

  /** `key` hashes every event (HMAC-SHA256); see src/audit. */
  constructor(
    private readonly key: AuditKey,
    secretValues: readonly string[] = [],
  ) {
    this.redact = createRedactor(secretValues);
  }

  private clean(events: NewEvent[]): NewEvent[] {
    return events.map((e) => ({ ...e, data: this.redact(e.data ?? {}) as Record<string, unknown> }));
  }

  /** Append to a run's chain. Call inside a transaction (see appendToChain). */
  appendToRun(client: Queryable, runId: string, ...events: NewEvent[]): Promise<TimelineEvent[]> {
    return appendToChain(client, this.key, runId, runId, this.clean(events));
  }

  /**
   * Take a run's chain lock for the rest of the transaction. Every transaction
   * that changes a run takes it first, which orders them and avoids deadlocks.
   */
  async lockRun(client: Queryable, runId: string): Promise<void> {
    await client.query(LOCK_CHAIN, [runId]);
  }

  /** Append to a run's chain in a transaction that already took lockRun. */
  appendToLockedRun(client: Queryable, runId: string, head: ChainHead | null | undefined, events: NewEvent[]): Promise<TimelineEvent[]> {
    return appendToChain(client, this.key, runId, runId, this.clean(events), { locked: true, head });
  }

  /** Append to the chain of events that belong to no run. */
  appendSystem(client: Queryable, ...events: NewEvent[]): Promise<TimelineEvent[]> {
    return appendToChain(client, this.key, SYSTEM_CHAIN, null, this.clean(events));
  }

  /**
   * Append to the access chain: authorization decisions, tokens and console
   * sessions that concern no run (decisions about a run go to its chain).
   */
  appendAccess(client: Queryable, ...events: NewEvent[]): Promise<TimelineEvent[]> {
    return appendToChain(client, this.key, ACCESS_CHAIN, null, this.clean(events));
  }

  /** First events of a new run's chain, hashed in memory for a single-statement insert. */
  genesisForRun(runId: string, events: NewEvent[]) {
    return buildGenesisEvents(this.key, runId, runId, this.clean(events));
  }
}
export {
  renderTimeline,
  buildTimelineView,
  viewFromEvents,
  timelineMarkdown,
  formatDuration,
  formatOffset,
  formatUtc,
  summarise,
  explain,
  mdCell,
  mdCode,
  type TimelineView,
  type TimelineDurations,
  type TimelineOptions,
  type TimelineOrigin,
  type TimelineSpan,
  type TimelineEntry,
  type SpanKind,
  type StepSummary,
  type ApprovalSummary,
  type StepCategory,
} from './render.js';
