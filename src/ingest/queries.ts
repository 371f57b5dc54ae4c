/** Named SQL for ingest. Run state is the engine's (src/engine/transitions.ts); ingest only creates runs it was handed. */
import { statement } from '../store/index.js';

/**
 * Store a group of notifications, their alert episodes and the runs they
 * start, in ONE statement (one round trip, one commit for the whole group:
 * group commit). Rows travel as JSON arrays read with jsonb_to_recordset; `n`
 * numbers the notifications of the group and ties every row to its own.
 *
 * - a notification row is skipped when its vendor delivery id was seen
 *   before (PagerDuty redelivery); then nothing else of it is written either.
 *   Ids are drawn first so each stored row maps back to its `n`.
 * - episodes upsert on (source, fingerprint, starts_at): a repeat bumps
 *   `deliveries`; a resolved episode never reopens. A resolve keeps the
 *   labels it does not repeat, and an empty severity (a Datadog recovery)
 *   never erases a known one. The caller never puts two notifications that
 *   touch one episode in the same group (an upsert touches a row once).
 * - `resolved_at = fb_now()` in RETURNING tells "resolved by this statement":
 *   fb_now() is the transaction's time, and an earlier resolve has an earlier one.
 * - runs are inserted only for firing episodes, at most one per
 *   (episode, playbook) through runs_episode_playbook_uq; a re-delivery
 *   conflicts and starts nothing. The safety rails decide first
 *   (fb_rails_verdict, migration 0026): an active silence suppresses, a pause
 *   holds, a cooldown waits, a full `limits` window throttles (runs of one
 *   key in this group are ranked against the window); the caller took the
 *   limited keys' advisory locks before this statement.
 * - every firing alert gets an outcome row per matching playbook (or one
 *   `no_match`), returned for metrics and the webhook's answer. A run names its playbook revision (stored
 *   before, once per content), not a copy of the definition.
 * - each new run's first timeline events were hashed in the app (the chain is
 *   new, so its prev hash is the genesis hash) and are inserted only for runs
 *   that were really created.
 * - pg_notify wakes idle workers when runs were created.
 * Rows are written in key order, so two groups in flight never deadlock.
 */
export const STORE_NOTIFICATIONS = statement('fb_ingest_store_notifications', `
with input as (
  select * from jsonb_to_recordset($1::jsonb)
    as x(n int, source text, delivery_id text, alert_count int, payload jsonb)
),
numbered as (
  select i.*, nextval(pg_get_serial_sequence('alert_notifications', 'id')) as id from input i
),
notification as (
  insert into alert_notifications (id, source, delivery_id, alert_count, payload, received_at)
  overriding system value
  select id, source, delivery_id, alert_count, payload, fb_now() from numbered order by source, delivery_id, n
  on conflict (source, delivery_id) where delivery_id is not null do nothing
  returning id
),
stored as (
  select nb.n, nb.id, nb.source from numbered nb join notification using (id)
),
incoming as (
  select u.*, u.alert->'labels' as labels, coalesce(u.alert->'annotations', '{}'::jsonb) as annotations
  from jsonb_to_recordset($2::jsonb)
    as u(n int, fingerprint text, starts_at timestamptz, status text, ends_at timestamptz, summary text, severity text,
         generator_url text, alert jsonb)
),
episodes as (
  insert into alert_episodes as e (source, fingerprint, starts_at, status, ends_at, labels, annotations, summary,
                                   severity, generator_url, alert, last_notification_id, resolved_at,
                                   first_seen_at, last_seen_at)
  select s.source, i.fingerprint, i.starts_at, i.status, i.ends_at, i.labels, i.annotations, i.summary,
         i.severity, i.generator_url, i.alert, s.id, case when i.status = 'resolved' then fb_now() end, fb_now(), fb_now()
  from incoming i join stored s on s.n = i.n
  order by s.source, i.fingerprint, i.starts_at
  on conflict (source, fingerprint, starts_at) do update set
    deliveries = e.deliveries + 1,
    last_seen_at = fb_now(),
    last_notification_id = excluded.last_notification_id,
    status = case when e.status = 'resolved' then 'resolved' else excluded.status end,
    ends_at = coalesce(excluded.ends_at, e.ends_at),
    labels = case when e.status = 'resolved' then e.labels when excluded.status = 'resolved' then e.labels || excluded.labels
                  else excluded.labels end,
    annotations = case when e.status = 'resolved' then e.annotations else excluded.annotations end,
    summary = case when e.status = 'resolved' then e.summary else excluded.summary end,
    severity = case when e.status = 'resolved' or excluded.severity = '' then e.severity else excluded.severity end,
    alert = case when e.status = 'resolved' then e.alert else excluded.alert end,
    resolved_at = case when e.status = 'resolved' then e.resolved_at when excluded.status = 'resolved' then fb_now() end
  returning e.id, e.fingerprint, e.starts_at, e.status, e.deliveries, (e.resolved_at = fb_now()) as resolved_now,
            e.last_notification_id
),
planned as (
  select * from jsonb_to_recordset($3::jsonb)
    as p(n int, run_id uuid, fingerprint text, starts_at timestamptz, playbook text, revision text, playbook_hash text,
         concurrency_key text, concurrency_limit int, channel text, alert jsonb, limit_key text, max_runs int,
         per_ms bigint, per_text text, cooldown_ms bigint, cooldown_text text, silence_id uuid, silence_text text)
),
candidates as (
  select p.*, s.id as notification_id, ep.id as episode_id,
         exists (select 1 from runs x where x.episode_id = ep.id and x.playbook = p.playbook) as has_run,
         v.verdict, v.reason as verdict_reason, v.in_window
  from planned p
  join stored s on s.n = p.n
  join episodes ep on ep.last_notification_id = s.id and ep.fingerprint = p.fingerprint and ep.starts_at = p.starts_at
  cross join lateral fb_rails_verdict(p.playbook, p.limit_key, p.max_runs, p.per_ms, p.cooldown_ms, p.cooldown_text, p.silence_id) v
  where ep.status = 'firing'
),
ranked as (
  select c.*, case when not c.has_run and c.verdict is null then
           row_number() over (partition by c.playbook, c.limit_key, (not c.has_run and c.verdict is null) order by c.n, c.fingerprint)
         end as rank
  from candidates c
),
decided as (
  select r.*, case
      when r.has_run then 'deduplicated'
      when r.verdict is not null then r.verdict
      when r.max_runs is not null and r.in_window + r.rank > r.max_runs then 'throttled'
      else 'started' end as outcome
  from ranked r
),
new_runs as (
  insert into runs (id, playbook, revision, playbook_hash, trigger, episode_id, alert, concurrency_key,
                    concurrency_limit, channel, limit_key, status, created_at, run_at)
  select d.run_id, d.playbook, d.revision, d.playbook_hash, 'alert', d.episode_id, d.alert, d.concurrency_key,
         d.concurrency_limit, d.channel, d.limit_key, 'queued', fb_now(), fb_now()
  from decided d
  where d.outcome = 'started'
  order by d.episode_id, d.playbook
  on conflict (episode_id, playbook) where episode_id is not null do nothing
  returning id, episode_id, playbook
),
outcomes as (
  insert into alert_outcomes (notification_id, episode_id, playbook, outcome, run_id, silence_id, reason, created_at)
  select d.notification_id, d.episode_id, d.playbook, o.outcome,
         case when o.outcome in ('started', 'deduplicated') then coalesce(nr.id, (select x.id from runs x where x.episode_id = d.episode_id and x.playbook = d.playbook limit 1)) end,
         case when o.outcome = 'suppressed' then d.silence_id end,
         case o.outcome
           when 'started' then format('run %s started', nr.id)
           when 'deduplicated' then 'a run of this playbook already handles this alert (same episode)'
           when 'suppressed' then d.silence_text
           when 'throttled' then format('%s run%s of %s started in the last %s (limits.max_runs %s)', d.in_window + d.rank - 1,
                                        case when d.in_window + d.rank - 1 = 1 then '' else 's' end,
                                        case when d.limit_key = '' then 'this playbook' else format('key %s', d.limit_key) end, d.per_text, d.max_runs)
           else d.verdict_reason end,
         fb_now()
  from decided d
  left join new_runs nr on nr.episode_id = d.episode_id and nr.playbook = d.playbook
  cross join lateral (select case when d.outcome = 'started' and nr.id is null then 'deduplicated' else d.outcome end as outcome) o
  union all
  select s.id, ep.id, null, 'no_match', null, null, 'no playbook matches this alert', fb_now()
  from incoming i
  join stored s on s.n = i.n
  join episodes ep on ep.last_notification_id = s.id and ep.fingerprint = i.fingerprint and ep.starts_at = i.starts_at
  where i.status = 'firing' and ep.status = 'firing'
    and not exists (select 1 from planned p where p.n = i.n and p.fingerprint = i.fingerprint and p.starts_at = i.starts_at)
  returning notification_id, playbook, outcome, run_id, reason
),
genesis as (
  insert into timeline_events (chain_id, seq, run_id, time, kind, actor, data, prev_hash, hash)
  select g.chain_id, g.seq, g.run_id, g.time, g.kind, g.actor, g.data, g.prev_hash, g.hash
  from jsonb_to_recordset($4::jsonb)
    as g(chain_id text, seq int, run_id uuid, time timestamptz, kind text, actor text, data jsonb, prev_hash text, hash text)
  join new_runs r on r.id = g.run_id
  order by g.chain_id, g.seq
  returning 1
),
wake as (
  select pg_notify('firebreak_runnable', count(*)::text) as notified from new_runs having count(*) > 0
)
select s.n, s.id as notification_id,
  (select count(*) from genesis) as genesis_events,
  (select count(*) from wake) as woke,
  coalesce((select json_agg(json_build_object('playbook', o.playbook, 'outcome', o.outcome, 'runId', o.run_id, 'reason', o.reason))
            from outcomes o where o.notification_id = s.id), '[]'::json) as outcomes,
  fb_clock() as now,
  coalesce((select json_agg(json_build_object(
     'id', ep.id, 'fingerprint', ep.fingerprint, 'startsAt', ep.starts_at, 'status', ep.status,
     'deliveries', ep.deliveries, 'resolvedNow', ep.resolved_now,
     'newRuns', coalesce((select json_agg(r.id) from new_runs r where r.episode_id = ep.id), '[]'::json),
     'existingRuns', coalesce((select json_agg(x.id order by x.created_at) from runs x where x.episode_id = ep.id), '[]'::json)
  )) from episodes ep where ep.last_notification_id = s.id), '[]'::json) as episodes
from stored s`);

/** The open episode a generic alert without startsAt belongs to. */
export const OPEN_EPISODE_START = statement('fb_ingest_open_episode_start', `
  select starts_at from alert_episodes
  where source = $1::text and fingerprint = $2::text and status = 'firing'
  order by starts_at desc limit 1`);

/**
 * Serialise counting per limited (playbook, key) across replicas: taken in
 * the transaction of the store statement, before its snapshot, in the order
 * of the lock ids themselves (two keys whose hashes collide share a lock, and
 * never make two groups wait for each other in opposite orders).
 */
export const LOCK_LIMIT_KEYS = statement('fb_ingest_lock_limit_keys', `
  select count(pg_advisory_xact_lock(7272, h))
  from (select distinct hashtext(k) as h from unnest($1::text[]) as k order by 1) locks`);
