import { named } from '../store/index.js';

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

/** One page of a chain, newest first ($2: only events before this seq; null: from the head). */
export const CHAIN_PAGE_NEWEST = named('fb_timeline_chain_page_newest', `
  select id, chain_id, seq, run_id, time, kind, actor, data, prev_hash, hash
  from timeline_events
  where chain_id = $1::text and ($3::int is null or seq < $3::int)
  order by seq desc
  limit $2::int`);
