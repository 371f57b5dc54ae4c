import { statement } from '../store/index.js';

/** Named SQL for the safety rails. Time always comes from the database clock (fb_now()). */

// ---- silences -----------------------------------------------------------------------------

/**
 * A silence's state is decided where its times live: `expired` once a person
 * expired it or its end passed, `pending` before its start, else `active`.
 * A silence that ran out on its own has no expired_at; its end is when it expired.
 */
const SILENCE_COLUMNS = `
  id, matchers, starts_at, ends_at, reason, created_by, created_at, expired_by,
  coalesce(expired_at, case when ends_at <= fb_now() then ends_at end) as expired_at,
  case when expired_at is not null or ends_at <= fb_now() then 'expired'
       when starts_at > fb_now() then 'pending'
       else 'active' end as state`;

/** The transaction's time, read once: every check and default of one act uses it. */
export const SILENCE_NOW = statement('fb_rails_silence_now', `select fb_now() as now`);

export const INSERT_SILENCE = statement('fb_rails_insert_silence', `
  insert into silences (id, matchers, starts_at, ends_at, reason, created_by)
  values ($1::uuid, $2::jsonb, $3::timestamptz, $4::timestamptz, $5::text, $6::text)
  returning ${SILENCE_COLUMNS}`);

export const SILENCE_BY_ID = statement('fb_rails_silence_by_id', `
  select ${SILENCE_COLUMNS} from silences where id = $1::uuid`);

/** Locked for an expiry, so two people expiring it at once record one expiry. */
export const SILENCE_FOR_UPDATE = statement('fb_rails_silence_for_update', `
  select ${SILENCE_COLUMNS} from silences where id = $1::uuid for update`);

export const EXPIRE_SILENCE = statement('fb_rails_expire_silence', `
  update silences set expired_at = fb_now(), expired_by = $2::text
  where id = $1::uuid and expired_at is null
  returning ${SILENCE_COLUMNS}`);

/**
 * `current`: active and pending (what still silences, now or later);
 * `expired`: expired by a person or run out; `all`. Newest first.
 */
export const LIST_SILENCES = statement('fb_rails_list_silences', `
  select ${SILENCE_COLUMNS} from silences
  where case $1::text
          when 'current' then expired_at is null and ends_at > fb_now()
          when 'expired' then expired_at is not null or ends_at <= fb_now()
          else true end
  order by created_at desc, id
  limit $2::integer`);

/**
 * What SilenceCache holds: every silence that may still silence (uses the
 * partial index silences_active_idx). Whether one is active at an instant
 * (starts_at <= now < ends_at) is decided against the database clock as the
 * app reads it (fb_clock(): this instant, not the transaction's start).
 * One row even when there is no silence, so the clock is read either way.
 */
export const LOAD_LIVE_SILENCES = statement('fb_rails_load_live_silences', `
  select s.id, s.matchers, s.starts_at, s.ends_at, s.reason, s.created_by, c.now
  from (select fb_clock() as now) c
  left join silences s on s.expired_at is null and s.ends_at > fb_now()
  order by s.starts_at, s.id`);
