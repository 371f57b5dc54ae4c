import type { AuditKey } from '../audit/index.js';
import { DatabaseClock, type Queryable } from '../store/index.js';
import { appendToChain, linkEvents, SYSTEM_CHAIN, type ChainHead, type LinkedEvent } from './chain.js';
import type { NewEvent, TimelineEvent } from './events.js';
import { createJsonRedactor, createRedactor } from './redact.js';
import { LOCK_CHAIN } from './queries.js';

export { INSERT_EVENT_RECORDS, CHAIN_HEAD } from './queries.js';
export { readChain, readChainPage, rowToEvent, eventRecords, lockAndReadHeadSql, SYSTEM_CHAIN, type EventRow, type ChainHead, type LinkedEvent } from './chain.js';
export * from './events.js';
export { GENESIS_HASH, canonicalJson, hashEvent, legacyHashEvent, sha256Hex, type HashedEvent } from './hash.js';
export { createRedactor, createJsonRedactor, REDACTED } from './redact.js';
export * from './view.js';
export * from './format.js';
export { timelineMarkdown, mdCell, mdCode } from './markdown.js';
export { buildTimelineView, renderTimeline } from './render.js';

/** The chain holding access decisions, token and session events that belong to no run. */
export const ACCESS_CHAIN = 'access';
/** The chain of the automation safety rails: pauses, resumes, silences, breaker trips, repairs (docs/safety-rails.md). */
export const AUTOMATION_CHAIN = 'automation';

/**
 * The one way events are written: every `data` passes through the secret
 * redactor before it is hashed (HMAC under the audit key) and stored, and an
 * event's time is the database clock as the app last read it.
 */
export class Timeline {
  readonly redact: (value: unknown) => unknown;
  /** The same redaction, straight to JSON text (cheap when there is nothing to redact). */
  readonly redactJson: (value: unknown) => string;
  readonly clock: DatabaseClock;

  /** `key` hashes every event (HMAC-SHA256); see src/audit. */
  constructor(
    private readonly key: AuditKey,
    secretValues: readonly string[] = [],
    clock: DatabaseClock = new DatabaseClock(),
  ) {
    this.redact = createRedactor(secretValues);
    this.redactJson = createJsonRedactor(secretValues);
    this.clock = clock;
  }

  private readonly now = (): Date => this.clock.date();

  private clean(events: readonly NewEvent[]): NewEvent[] {
    return events.map((e) => ({ ...e, data: this.redact(e.data ?? {}) }) as NewEvent);
  }

  /** Append to a run's chain. Call inside a transaction (see appendToChain). */
  appendToRun(client: Queryable, runId: string, ...events: NewEvent[]): Promise<TimelineEvent[]> {
    return appendToChain(client, this.key, runId, runId, this.clean(events), { now: this.now });
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
    return appendToChain(client, this.key, runId, runId, this.clean(events), { locked: true, head, now: this.now });
  }

  /** Append to the chain of events that belong to no run. */
  appendSystem(client: Queryable, ...events: NewEvent[]): Promise<TimelineEvent[]> {
    return appendToChain(client, this.key, SYSTEM_CHAIN, null, this.clean(events), { now: this.now });
  }

  /**
   * Append to the access chain: authorization decisions, tokens and console
   * sessions that concern no run (decisions about a run go to its chain).
   */
  appendAccess(client: Queryable, ...events: NewEvent[]): Promise<TimelineEvent[]> {
    return appendToChain(client, this.key, ACCESS_CHAIN, null, this.clean(events), { now: this.now });
  }

  /** Append to the automation chain (kill switch, silences, circuit breakers, repairs). */
  appendAutomation(client: Queryable, ...events: NewEvent[]): Promise<TimelineEvent[]> {
    return appendToChain(client, this.key, AUTOMATION_CHAIN, null, this.clean(events), { now: this.now });
  }

  /**
   * Redact and hash a run's events onto a head the caller knows (null: a new
   * chain), without writing: for statements that insert them together with the
   * state they describe. The caller's statement must hold the chain lock and
   * check that the head is still the head.
   */
  link(runId: string, head: ChainHead | null, events: readonly NewEvent[]): LinkedEvent[] {
    return linkEvents(this.key, runId, runId, head, this.clean(events), this.now);
  }
}
