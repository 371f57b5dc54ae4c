/** Named SQL of the automation safety rails (tables: migration 0026). */
import { statement } from '../store/index.js';

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
