import { named } from '../store/index.js';

/**
 * Named SQL for the engine. Conventions: every transaction that changes a run
 * first takes the run's timeline chain lock (Timeline.lockRun), then checks
 * the lease with LEASED_RUN; a worker that lost its lease changes nothing.
 */

/**
 * Claim runnable runs. SKIP LOCKED lets several workers (and replicas) claim
 * concurrently without blocking on each other's candidates; the lease makes a
 * claim survive the transaction, and an expired lease (dead worker) makes the
 * run claimable again. The CTE keeps the previous owner to count takeovers.
 */
export const CLAIM_RUNS = named('fb_engine_claim_runs', `
with candidates as (
  select id, lease_owner as previous_owner
  from runs
  where status in ('queued', 'running')
    and run_at <= now()
    and (lease_expires_at is null or lease_expires_at < now())
  order by run_at
  limit $2::int
  for update skip locked
)
update runs r
set lease_owner = $1::text, lease_expires_at = now() + ($3::int * interval '1 millisecond')
from candidates c
where r.id = c.id
returning r.id, c.previous_owner`);

/** Renew leases; returns the runs still held and whether someone asked them to abort. */
export const HEARTBEAT = named('fb_engine_heartbeat', `
  update runs set lease_expires_at = now() + ($3::int * interval '1 millisecond')
  where id = any($1::uuid[]) and lease_owner = $2::text
  returning id, abort_requested_at is not null as abort_requested`);

export const RELEASE_LEASE = named('fb_engine_release_lease', `
  update runs set lease_owner = null, lease_expires_at = null, run_at = $3::timestamptz,
                  status = $4::text
  where id = $1::uuid and lease_owner = $2::text`);

/** Give back every lease this worker holds (clean shutdown) so others resume at once. */
export const RELEASE_ALL = `
  update runs set lease_owner = null, lease_expires_at = null
  where lease_owner = $1::text`;

export const LEASED_RUN = named('fb_engine_leased_run', `
  select id, playbook, definition, playbook_hash, status, trigger, started_by, episode_id, alert, params, dry_run,
         dry_run_options, concurrency_key, concurrency_limit, channel, created_at, started_at, abort_requested_at,
         abort_requested_by, abort_reason
  from runs where id = $1::uuid and lease_owner = $2::text`);

export const RUN_STEPS = named('fb_engine_run_steps', `
  select step_id, position, action, target, status, attempts, started_at, finished_at, output, error, poll_state,
         cleared_at, compensation_status
  from run_steps where run_id = $1::uuid order by position`);

export const INSERT_STEPS = `
  insert into run_steps (run_id, step_id, position, action)
  select $1::uuid, s.step_id, s.position, s.action
  from unnest($2::text[], $3::int[], $4::text[]) as s(step_id, position, action)
  on conflict do nothing`;

/** Active runs holding a concurrency slot (under the key's advisory lock). */
/**
 * Runs holding a slot of the key, plus queued runs created before this one:
 * admission is first come, first served (under the key's advisory lock).
 */
export const ACTIVE_WITH_KEY = `
  select count(*) filter (where status in ('running', 'waiting'))::int as n,
         count(*) filter (where status = 'queued' and (created_at, id) < ($3::timestamptz, $2::uuid))::int as ahead
  from runs
  where concurrency_key = $1::text and status in ('running', 'waiting', 'queued') and id <> $2::uuid`;

export const LOCK_CONCURRENCY_KEY = `select pg_advisory_xact_lock(7271, hashtext($1::text))`;

export const START_RUN = `
  update runs set status = 'running', started_at = coalesce(started_at, now())
  where id = $1::uuid and lease_owner = $2::text`;

/** When a slot frees, queued runs with the same key are due again. */
export const WAKE_QUEUED_WITH_KEY = `
  update runs set run_at = now()
  where concurrency_key = $1::text and status = 'queued' and run_at > now()`;

export const NOTIFY_RUNNABLE = `select pg_notify('firebreak_runnable', $1::text)`;

export const UPDATE_STEP = named('fb_engine_update_step', `
  update run_steps set
    status = $3::text,
    attempts = coalesce($4::int, attempts),
    started_at = case when $3::text in ('running') then coalesce(started_at, now()) else started_at end,
    finished_at = case when $3::text in ('succeeded', 'failed', 'skipped', 'denied') then now() else finished_at end,
    output = coalesce($5::jsonb, output),
    error = $6::jsonb,
    poll_state = $7::jsonb,
    target = coalesce($8::text, target),
    cleared_at = case when $9::boolean then coalesce(cleared_at, now()) else cleared_at end
  where run_id = $1::uuid and step_id = $2::text`);

export const INSERT_ATTEMPT = named('fb_engine_insert_attempt', `
  insert into step_attempts (run_id, step_id, attempt, idempotency_key, worker)
  values ($1::uuid, $2::text, $3::int, $4::text, $5::text)
  on conflict do nothing`);

export const FINISH_ATTEMPT = named('fb_engine_finish_attempt', `
  update step_attempts set status = $4::text, finished_at = now(), error = $5::jsonb
  where run_id = $1::uuid and step_id = $2::text and attempt = $3::int`);

export const SET_COMPENSATION = `
  update run_steps set compensation_status = $3::text,
    status = case when $3::text = 'succeeded' then 'compensated' else status end
  where run_id = $1::uuid and step_id = $2::text`;

export const FINISH_RUN = `
  update runs set status = $3::text, finished_at = now(), outcome = $4::jsonb,
                  lease_owner = null, lease_expires_at = null
  where id = $1::uuid and lease_owner = $2::text`;

/** Recent real (non-dry) executions of an action on a target: the policy's `history`. */
export const HISTORY = `
  select s.run_id, r.playbook, s.step_id, s.action, s.target, s.status, coalesce(s.started_at, s.cleared_at) as at,
         coalesce((select d->>'impact' from jsonb_array_elements(r.definition->'steps') d
                   where d->>'id' = s.step_id limit 1), 'high') as impact
  from run_steps s join runs r on r.id = s.run_id
  where s.action = $1::text and s.target = $2::text and not r.dry_run and s.run_id <> $3::uuid
    and s.cleared_at > now() - interval '24 hours'
  order by s.cleared_at desc limit 50`;

// ---- approvals ----

export const LATEST_APPROVAL = `
  select id, round, status, approvers, min_approvals, decided_by, decided_at
  from approvals where run_id = $1::uuid and step_id = $2::text
  order by round desc limit 1`;

export const INSERT_APPROVAL = `
  insert into approvals (id, run_id, step_id, round, approvers, min_approvals, reasons, request, on_timeout, expires_at)
  values ($1::uuid, $2::uuid, $3::text, $4::int, $5::jsonb, $6::int, $7::jsonb, $8::jsonb, $9::text,
          now() + ($10::int * interval '1 millisecond'))
  on conflict (run_id, step_id, round) do nothing`;

export const APPROVAL_BY_ID = `
  select a.id, a.run_id, a.step_id, a.round, a.status, a.approvers, a.min_approvals, a.reasons, a.request,
         a.on_timeout, a.requested_at, a.expires_at, a.decided_by, a.decided_at,
         r.playbook, r.started_by, r.status as run_status, r.dry_run
  from approvals a join runs r on r.id = a.run_id
  where a.id = $1::uuid`;

export const APPROVAL_RUN = `select run_id from approvals where id = $1::uuid`;

export const APPROVAL_VOTES = `
  select voter, decision, at from approval_votes where approval_id = $1::uuid order by at`;

export const INSERT_VOTE = `
  insert into approval_votes (approval_id, voter, decision) values ($1::uuid, $2::text, $3::text)
  on conflict do nothing returning voter`;

/** Decide once: only a pending approval changes, so two answers cannot both win. */
export const DECIDE_APPROVAL = `
  update approvals set status = $2::text, decided_by = $3::text, decided_at = now()
  where id = $1::uuid and status = 'pending'
  returning id`;

/** A decided approval makes its run runnable again. */
export const RESUME_RUN = `
  update runs set status = case when status = 'waiting' then 'running' else status end, run_at = now()
  where id = $1::uuid and status in ('queued', 'running', 'waiting')`;

/** Approvals past their deadline, for the expiry sweep (read without locks; EXPIRE_APPROVAL decides). */
export const DUE_APPROVALS = `
  select id, run_id, step_id from approvals
  where status = 'pending' and expires_at < now()
  order by expires_at limit 100`;

/** Expire one approval, under its run's chain lock; a concurrent answer wins if it came first. */
export const EXPIRE_APPROVAL = `
  update approvals set status = 'expired', decided_at = now(), decided_by = 'system'
  where id = $1::uuid and status = 'pending'
  returning on_timeout`;

/** Steps still pending when a run ends did not run. */
export const SKIP_PENDING_STEPS = `
  update run_steps set status = 'skipped', finished_at = now()
  where run_id = $1::uuid and status = 'pending'`;

export const HAS_QUEUED_EVENT = `select 1 from timeline_events where chain_id = $1::text and kind = 'run.queued' limit 1`;

export const CANCEL_RUN_APPROVALS = `
  update approvals set status = 'cancelled', decided_at = now(), decided_by = $2::text
  where run_id = $1::uuid and status = 'pending'
  returning id, step_id`;

// ---- reads for the API and CLI ----

export const RUN_BY_ID = `
  select id, playbook, status, trigger, started_by, episode_id, alert, params, dry_run, dry_run_options, channel,
         created_at, started_at, finished_at, abort_reason, outcome, concurrency_key, definition
  from runs where id = $1::uuid`;

export const LIST_RUNS = `
  select id, playbook, status, trigger, started_by, episode_id, dry_run, created_at, started_at, finished_at
  from runs
  where ($1::text is null or status = $1::text) and ($2::text is null or playbook = $2::text)
  order by created_at desc, id
  limit $3::int`;

export const STEPS_OF_RUNS = `
  select run_id, step_id, position, action, status, attempts, started_at, finished_at, output, error,
         compensation_status
  from run_steps where run_id = any($1::uuid[]) order by run_id, position`;

export const APPROVALS_OF_RUNS = `
  select a.id, a.run_id, a.step_id, a.round, a.status, a.approvers, a.min_approvals, a.reasons, a.requested_at,
         a.expires_at, a.decided_by, a.decided_at, a.request, a.on_timeout
  from approvals a where a.run_id = any($1::uuid[]) order by a.requested_at`;

export const PENDING_APPROVALS = `
  select a.id, a.run_id, a.step_id, a.round, a.status, a.approvers, a.min_approvals, a.reasons, a.requested_at,
         a.expires_at, a.decided_by, a.decided_at, a.request, a.on_timeout
  from approvals a where a.status = 'pending' order by a.requested_at`;

/** Abort a run that never started: nothing to compensate. */
export const ABORT_QUEUED = `
  update runs set status = 'aborted', finished_at = now(), abort_requested_at = now(), abort_requested_by = $2::text,
                  abort_reason = $3::text, lease_owner = null, lease_expires_at = null
  where id = $1::uuid and status = 'queued' and lease_owner is null
  returning id`;

export const REQUEST_ABORT = `
  update runs set abort_requested_at = coalesce(abort_requested_at, now()),
                  abort_requested_by = coalesce(abort_requested_by, $2::text),
                  abort_reason = coalesce(abort_reason, $3::text),
                  status = case when status = 'waiting' then 'running' else status end,
                  run_at = now()
  where id = $1::uuid and status in ('queued', 'running', 'waiting')
  returning id`;

export const INSERT_MANUAL_RUN = `
  insert into runs (id, playbook, definition, playbook_hash, trigger, started_by, alert, params, dry_run, dedup_key,
                    concurrency_key, concurrency_limit, channel, episode_id, dry_run_options)
  values ($1::uuid, $2::text, $3::jsonb, $4::text, $5::text, $6::text, $7::jsonb, $8::jsonb, $9::boolean, $10::text,
          $11::text, $12::int, $13::text, $14::bigint, $15::jsonb)
  on conflict (dedup_key) do nothing
  returning id`;

export const RUN_BY_DEDUP_KEY = `select id from runs where dedup_key = $1::text`;

export const LIST_ALERTS = `
  select e.id, e.source, e.fingerprint, e.starts_at, e.ends_at, e.status, e.deliveries, e.summary, e.severity,
         e.labels, e.first_seen_at, e.last_seen_at, e.resolved_at,
         coalesce((select json_agg(r.id order by r.created_at) from runs r where r.episode_id = e.id), '[]'::json) as runs
  from alert_episodes e
  where ($1::text is null or e.status = $1::text) and ($2::text is null or e.source = $2::text)
  order by e.first_seen_at desc, e.id desc
  limit $3::int`;

export const EPISODE_BY_ID = `select id, alert from alert_episodes where id = $1::bigint`;

export const RUN_STATUS = `select status from runs where id = $1::uuid`;
