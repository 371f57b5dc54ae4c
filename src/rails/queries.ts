/** Named SQL of the automation safety rails (tables: migration 0026). Time always comes from the database clock (fb_now()). */
import { statement } from '../store/index.js';

// ---- the kill switch and circuit breaker ------------------------------------------------------

const PAUSE_FIELDS = `id, playbook, paused_at, paused_by, reason, source, run_id, breaker_key, resumed_at, resumed_by, resume_reason`;

/** Pauses in force: everything (playbook null) first. */
export const OPEN_PAUSES = statement('fb_rails_open_pauses', `
  select ${PAUSE_FIELDS} from automation_pauses where resumed_at is null order by playbook nulls first`);

/** Pause a scope; nothing when it is paused already (one open pause per scope). */
export const INSERT_PAUSE = statement('fb_rails_insert_pause', `
  insert into automation_pauses (playbook, paused_by, reason, source, run_id, breaker_key, paused_at)
  values ($1::text, $2::text, $3::text, $4::text, $5::uuid, $6::text, fb_now())
  on conflict ((coalesce(playbook, ''))) where resumed_at is null do nothing
  returning ${PAUSE_FIELDS}`);

export const OPEN_PAUSE_OF = statement('fb_rails_open_pause_of', `
  select ${PAUSE_FIELDS} from automation_pauses where resumed_at is null and coalesce(playbook, '') = coalesce($1::text, '')`);

/** Close the open pause of a scope (the row stays: who paused, when and why). */
export const RESUME = statement('fb_rails_resume', `
  update automation_pauses set resumed_at = fb_now(), resumed_by = $2::text, resume_reason = $3::text
  where resumed_at is null and coalesce(playbook, '') = coalesce($1::text, '')
  returning ${PAUSE_FIELDS}`);

/** Tell every replica (their caches) and idle workers (held runs may go on). */
export const NOTIFY_AUTOMATION = statement('fb_rails_notify', `
  select pg_notify('firebreak_automation', $1::text), pg_notify('firebreak_runnable', $1::text)`);

/** One breaker decision per playbook at a time (two runs failing together must not both trip, or both miss). */
export const LOCK_BREAKER = statement('fb_rails_lock_breaker', `select pg_advisory_xact_lock(7273, hashtext($1::text))`);

/**
 * The newest finished alert runs of (playbook, key) that succeeded or failed,
 * since a person last resumed the playbook: a breaker trips when the newest
 * `failures` all failed.
 */
export const BREAKER_STREAK = statement('fb_rails_breaker_streak', `
  select id, status from runs
  where playbook = $1::text and limit_key = $2::text and status in ('succeeded', 'failed') and not dry_run
    and finished_at > coalesce((select max(resumed_at) from automation_pauses where playbook = $1::text), '-infinity')
  order by finished_at desc, id
  limit $3::int`);

/** What the rails would say about one more alert run (dry runs report it; nothing is counted). */
export const RAILS_VERDICT = statement('fb_rails_verdict', `
  select verdict, reason, in_window from fb_rails_verdict($1::text, $2::text, $3::int, $4::bigint, $5::bigint, $6::text, $7::uuid)`);

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
