/** Named SQL for ingest. */

/**
 * Store one notification, its alert episodes and the runs they start, in ONE
 * statement. Rows travel as three JSON arrays ($5 alerts, $6 planned runs,
 * $7 genesis events) read with jsonb_to_recordset: cheaper to encode and to
 * parse than a dozen escaped array literals.
 *
 * statement (so one round trip and one commit on the hot path, and nothing
 * half-written if the connection dies).
 *
 * - the notification row is skipped when its vendor delivery id was seen
 *   before (PagerDuty redelivery); then nothing else is written either.
 * - episodes upsert on (source, fingerprint, starts_at): a repeat bumps
 *   `deliveries`; a resolved episode never reopens. A resolve keeps the
 *   labels it does not repeat, and an empty severity (a Datadog recovery)
 *   never erases a known one.
 * - `resolved_at = now()` in RETURNING tells "resolved by this statement":
 *   now() is the transaction start, and an earlier resolve has an earlier time.
 * - runs are inserted only for firing episodes, at most one per
 *   (episode, playbook) through runs_episode_playbook_uq; a re-delivery
 *   conflicts and starts nothing.
 * - each new run's first timeline events were hashed in the app (the chain is
 *   new, so its prev hash is the genesis hash) and are inserted only for runs
 *   that were really created.
 * - pg_notify wakes idle workers; the CTE is referenced so it runs.
 */
export const STORE_NOTIFICATION = `
with notification as (
  insert into alert_notifications (source, delivery_id, alert_count, payload)
  values ($1::text, $2::text, $3::int, $4::jsonb)
  on conflict (source, delivery_id) where delivery_id is not null do nothing
  returning id
),
incoming as (
  select u.*, u.alert->'labels' as labels, coalesce(u.alert->'annotations', '{}'::jsonb) as annotations
  from jsonb_to_recordset($5::jsonb)
    as u(fingerprint text, starts_at timestamptz, status text, ends_at timestamptz, summary text, severity text,
         generator_url text, alert jsonb)
),
episodes as (
  insert into alert_episodes as e (source, fingerprint, starts_at, status, ends_at, labels, annotations, summary,
                                   severity, generator_url, alert, last_notification_id, resolved_at)
  select $1::text, i.fingerprint, i.starts_at, i.status, i.ends_at, i.labels, i.annotations, i.summary,
         i.severity, i.generator_url, i.alert, n.id, case when i.status = 'resolved' then now() end
  from incoming i cross join notification n
  on conflict (source, fingerprint, starts_at) do update set
    deliveries = e.deliveries + 1,
    last_seen_at = now(),
    last_notification_id = excluded.last_notification_id,
    status = case when e.status = 'resolved' then 'resolved' else excluded.status end,
    ends_at = coalesce(excluded.ends_at, e.ends_at),
    labels = case when e.status = 'resolved' then e.labels when excluded.status = 'resolved' then e.labels || excluded.labels
                  else excluded.labels end,
    annotations = case when e.status = 'resolved' then e.annotations else excluded.annotations end,
    summary = case when e.status = 'resolved' then e.summary else excluded.summary end,
    severity = case when e.status = 'resolved' or excluded.severity = '' then e.severity else excluded.severity end,
    alert = case when e.status = 'resolved' then e.alert else excluded.alert end,
    resolved_at = case when e.status = 'resolved' then e.resolved_at when excluded.status = 'resolved' then now() end
  returning e.id, e.fingerprint, e.starts_at, e.status, e.deliveries, (e.resolved_at = now()) as resolved_now
),
planned as (
  select * from jsonb_to_recordset($6::jsonb)
    as p(run_id uuid, fingerprint text, starts_at timestamptz, playbook text, definition jsonb, playbook_hash text,
         concurrency_key text, concurrency_limit int, channel text, alert jsonb)
),
new_runs as (
  insert into runs (id, playbook, definition, playbook_hash, trigger, episode_id, alert, concurrency_key,
                    concurrency_limit, channel, status)
  select p.run_id, p.playbook, p.definition, p.playbook_hash, 'alert', ep.id, p.alert, p.concurrency_key,
         p.concurrency_limit, p.channel, 'queued'
  from planned p
  join episodes ep on ep.fingerprint = p.fingerprint and ep.starts_at = p.starts_at
  where ep.status = 'firing'
  on conflict (episode_id, playbook) where episode_id is not null do nothing
  returning id, episode_id
),
genesis as (
  insert into timeline_events (chain_id, seq, run_id, time, kind, actor, data, prev_hash, hash)
  select g.chain_id, g.seq, g.run_id, g.time, g.kind, g.actor, g.data, g.prev_hash, g.hash
  from jsonb_to_recordset($7::jsonb)
    as g(chain_id text, seq int, run_id uuid, time timestamptz, kind text, actor text, data jsonb, prev_hash text, hash text)
  join new_runs r on r.id = g.run_id
  returning 1
),
wake as (
  select pg_notify('firebreak_runnable', count(*)::text) as notified from new_runs having count(*) > 0
)
select
  (select id from notification) as notification_id,
  (select count(*) from genesis) as genesis_events,
  (select count(*) from wake) as woke,
  coalesce((select json_agg(json_build_object(
     'id', ep.id, 'fingerprint', ep.fingerprint, 'startsAt', ep.starts_at, 'status', ep.status,
     'deliveries', ep.deliveries, 'resolvedNow', ep.resolved_now,
     'newRuns', coalesce((select json_agg(r.id) from new_runs r where r.episode_id = ep.id), '[]'::json),
     'existingRuns', coalesce((select json_agg(x.id order by x.created_at) from runs x where x.episode_id = ep.id), '[]'::json)
  )) from episodes ep), '[]'::json) as episodes`;

/** The open episode a generic alert without startsAt belongs to. */
export const OPEN_EPISODE_START = `
  select starts_at from alert_episodes
  where source = $1::text and fingerprint = $2::text and status = 'firing'
  order by starts_at desc limit 1`;

/** Runs of episodes resolved just now, with what the resolve must do to them. */
export const RUNS_OF_EPISODES = `
  select r.id, r.status, coalesce(r.definition->>'onResolved', 'continue') as on_resolved, r.episode_id
  from runs r where r.episode_id = any($1::bigint[])
  order by r.created_at`;

export const CANCEL_PENDING_APPROVALS = `
  update approvals set status = 'cancelled', decided_at = now(), decided_by = $2::text
  where run_id = $1::uuid and status = 'pending'
  returning id, step_id`;

/** Ask the run to stop (on_resolved: abort); the engine runs compensation. */
export const REQUEST_ABORT = `
  update runs set abort_requested_at = coalesce(abort_requested_at, now()),
                  abort_requested_by = coalesce(abort_requested_by, $2::text),
                  abort_reason = coalesce(abort_reason, $3::text),
                  status = case when status = 'waiting' then 'running' else status end,
                  run_at = now()
  where id = $1::uuid and status in ('queued', 'running', 'waiting')`;

/** Wake a run so its worker notices the resolve (skips a cancelled approval, or continues). */
export const WAKE_RUN = `
  update runs set run_at = now(), status = case when status = 'waiting' then 'running' else status end
  where id = $1::uuid and status in ('queued', 'running', 'waiting')`;

export const NOTIFY_RUNNABLE = `select pg_notify('firebreak_runnable', '1')`;
