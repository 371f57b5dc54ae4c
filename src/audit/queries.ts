import { named } from '../store/index.js';

/** Named SQL for checkpoints and `audit verify`. */

/** One checkpoint writer at a time across replicas; skipped (not waited for) when another holds it. */
export const TRY_CHECKPOINT_LOCK = `select pg_try_advisory_xact_lock(7271, 1) as locked`;

/**
 * What the next checkpoint needs, all from the database clock: the time
 * (milliseconds, so it survives a round trip through JS), the previous
 * checkpoint, whether it is too recent (another replica just wrote one), and
 * where to start looking for chains that moved.
 *
 * Event ids come from a sequence and commit out of order: an event with a
 * small id can become visible after a larger one was checkpointed. So the
 * scan starts at the id reached by a checkpoint at least `lookback` old (any
 * transaction still open from before then would be extraordinary); chains
 * whose head did not change since their last checkpointed head are dropped
 * below, so the overlap costs a little reading and nothing else.
 */
export const CHECKPOINT_STATE = `
  select date_trunc('milliseconds', now()) as now,
         last.seq as last_seq,
         last.signature as last_signature,
         coalesce(last.time > now() - make_interval(secs => $1::double precision / 1000), false) as too_soon,
         coalesce(
           (select through_event_id from audit_checkpoints
             where time < now() - make_interval(secs => $2::double precision / 1000) order by seq desc limit 1),
           (select through_event_id from audit_checkpoints order by seq limit 1),
           0) as scan_from,
         (select coalesce(max(id), 0) from timeline_events) as through,
         (select digest from timeline_legacy_seal limit 1) as legacy_digest
  from (select 1) as one
  left join lateral (select seq, signature, time from audit_checkpoints order by seq desc limit 1) as last on true`;

/**
 * Current head of every chain with an event after $1 whose head differs from
 * its last checkpointed one, with that checkpointed head and the hash now
 * found at its position: a chain that no longer extends its checkpointed head
 * was cut or rewritten, and the writer refuses to sign over that.
 */
export const MOVED_HEADS = `
  select r.chain_id, h.seq, h.hash, last.checkpoint as last_checkpoint, last.seq as last_seq, last.hash as last_hash,
         (select e.hash from timeline_events e where e.chain_id = r.chain_id and e.seq = last.seq) as hash_at_last
  from (select distinct chain_id from timeline_events where id > $1::bigint) as r
  cross join lateral (select seq, hash from timeline_events e where e.chain_id = r.chain_id order by seq desc limit 1) as h
  left join lateral (select checkpoint, seq, hash from audit_checkpoint_heads c where c.chain_id = r.chain_id order by checkpoint desc limit 1) as last on true
  where last.seq is distinct from h.seq or last.hash is distinct from h.hash`;

export const INSERT_CHECKPOINTS = `
  insert into audit_checkpoints (seq, time, prev_signature, heads_count, legacy_digest, key_id, signature, through_event_id)
  select * from unnest($1::int[], $2::timestamptz[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::bigint[])`;

export const INSERT_CHECKPOINT_HEADS = `
  insert into audit_checkpoint_heads (checkpoint, chain_id, seq, hash)
  select * from unnest($1::int[], $2::text[], $3::int[], $4::text[])`;

/** Newest first, before an optional seq: the API's pages. */
export const CHECKPOINTS_NEWEST = named('fb_audit_checkpoints_newest', `
  select seq, time, prev_signature, heads_count, legacy_digest, key_id, signature
  from audit_checkpoints
  where ($2::int is null or seq < $2::int)
  order by seq desc
  limit $1::int`);

/** Oldest first, after a seq: verify's pages. */
export const CHECKPOINTS_AFTER = `
  select seq, time, prev_signature, heads_count, legacy_digest, key_id, signature
  from audit_checkpoints
  where seq > $1::int
  order by seq
  limit $2::int`;

export const HEADS_OF_CHECKPOINTS = `
  select checkpoint, chain_id, seq, hash
  from audit_checkpoint_heads
  where checkpoint = any($1::int[])`;

export const LATEST_CHECKPOINT_KEY = `select seq, key_id from audit_checkpoints order by seq desc limit 1`;

// ---------- audit verify ----------

/** Keyset pagination over all chains, in chain order. */
export const EVENTS_PAGE = `
  select id, chain_id, seq, run_id, time, kind, actor, data, prev_hash, hash
  from timeline_events
  where (chain_id, seq) > ($1::text, $2::int)
  order by chain_id, seq
  limit $3::int`;

/** The same, for one chain. */
export const EVENTS_PAGE_OF_CHAIN = `
  select id, chain_id, seq, run_id, time, kind, actor, data, prev_hash, hash
  from timeline_events
  where chain_id = $1::text and seq > $2::int
  order by seq
  limit $3::int`;

export const COUNT_EVENTS = `select count(*)::bigint as n from timeline_events where ($1::text is null or chain_id = $1::text)`;

/** Per page of events: what else says how each chain should look. */
export const LEGACY_HEADS_OF = `select chain_id, seq, hash from timeline_legacy_heads where chain_id = any($1::text[])`;
/** Every checkpointed head of these chains: each must still match (few per chain: one per checkpoint it moved in). */
export const CHECKPOINTED_HEADS_OF = `
  select h.chain_id, h.checkpoint, h.seq, h.hash, c.time
  from audit_checkpoint_heads h
  join audit_checkpoints c on c.seq = h.checkpoint
  where h.chain_id = any($1::text[])`;
export const NEWEST_CHECKPOINT = `
  select seq, time, prev_signature, heads_count, legacy_digest, key_id, signature
  from audit_checkpoints order by seq desc limit 1`;
export const CHECKPOINTS_BY_SEQ = `
  select seq, time, prev_signature, heads_count, legacy_digest, key_id, signature
  from audit_checkpoints where seq = any($1::int[])`;
export const RUN_STATUS_OF = `select id::text as id, status from runs where id = any($1::uuid[])`;

/** Legacy boundary in byte order (its primary key is "C" collated), for the seal's digest. */
export const LEGACY_HEADS_PAGE = `
  select chain_id, seq, hash from timeline_legacy_heads
  where chain_id > $1::text
  order by chain_id
  limit $2::int`;
export const LEGACY_SEAL = `select chains, digest from timeline_legacy_seal`;

/** Chains something remembers that have no event left at all ($1: one chain, or null for all). */
export const RUNS_WITHOUT_EVENTS = `
  select r.id::text as chain_id, r.status
  from runs r
  where ($1::text is null or r.id::text = $1::text)
    and not exists (select 1 from timeline_events e where e.chain_id = r.id::text)`;
export const CHECKPOINTED_CHAINS_WITHOUT_EVENTS = `
  select h.chain_id, h.checkpoint, h.seq, h.hash, c.time
  from audit_checkpoint_heads h
  join audit_checkpoints c on c.seq = h.checkpoint
  where ($1::text is null or h.chain_id = $1::text)
    and not exists (select 1 from timeline_events e where e.chain_id = h.chain_id)
  order by h.chain_id, h.seq desc`;
export const LEGACY_CHAINS_WITHOUT_EVENTS = `
  select l.chain_id, l.seq, l.hash
  from timeline_legacy_heads l
  where ($1::text is null or l.chain_id = $1::text)
    and not exists (select 1 from timeline_events e where e.chain_id = l.chain_id)`;
