import { named, statement } from '../store/index.js';

/** Named SQL for the timeline. */

/** Serialises appends to one chain; two-key advisory lock space keeps it apart from other locks. */
export const LOCK_CHAIN = named('fb_timeline_lock_chain', `select pg_advisory_xact_lock(7270, hashtext($1::text))`);

export const CHAIN_HEAD = named('fb_timeline_chain_head', `
  select seq, hash from timeline_events
  where chain_id = $1::text
  order by seq desc
  limit 1`);

export const INSERT_EVENTS = named('fb_timeline_insert_events', `
  insert into timeline_events (chain_id, seq, run_id, time, kind, actor, data, prev_hash, hash)
  select * from unnest($1::text[], $2::int[], $3::uuid[], $4::timestamptz[], $5::text[], $6::text[], $7::jsonb[], $8::text[], $9::text[])
  returning id`);

export const EVENTS_OF_CHAIN = `
  select id, chain_id, seq, run_id, time, kind, actor, data, prev_hash, hash
  from timeline_events where chain_id = $1::text order by seq`;

/**
 * Events already linked and hashed by the caller (Timeline.link), as one JSON
 * array: for batches that insert them with the state they describe. The
 * caller holds the chain lock and checked the head.
 */
export const INSERT_EVENT_RECORDS = statement('fb_timeline_insert_event_records', `
  insert into timeline_events (chain_id, seq, run_id, time, kind, actor, data, prev_hash, hash)
  select e.chain_id, e.seq, e.run_id, e.time, e.kind, e.actor, e.data, e.prev_hash, e.hash
  from jsonb_to_recordset($1::jsonb)
    as e(chain_id text, seq int, run_id uuid, time timestamptz, kind text, actor text, data jsonb, prev_hash text, hash text)
  order by e.seq`);

/** One page of a chain, newest first ($2: only events before this seq; null: from the head). */
export const CHAIN_PAGE_NEWEST = named('fb_timeline_chain_page_newest', `
  select id, chain_id, seq, run_id, time, kind, actor, data, prev_hash, hash
  from timeline_events
  where chain_id = $1::text and ($3::int is null or seq < $3::int)
  order by seq desc
  limit $2::int`);
