import { statement } from '../store/index.js';

/**
 * Named SQL for the engine. Time is always fb_now() (the database clock, see
 * migration 0008), never the app's. Statements marked "batch" run inside a
 * worker's one-round-trip batch behind RUN_GUARD (src/engine/run-tx.ts); the
 * others run on their own or in an interactive transaction.
 */

// ---------- the worker: claims, leases, loading a run ----------

/**
 * Everything a turn needs about a run (alias `r`): the row, its steps, its
 * latest approval (and whether its deadline passed), its chain head. The
 * definition is read by revision, once per process (revisions never change).
 */
const TURN_STATE = (r: string) => `
  ${r}.id, ${r}.playbook, ${r}.revision, ${r}.status, ${r}.trigger, ${r}.started_by, ${r}.episode_id, ${r}.alert, ${r}.params,
  ${r}.dry_run, ${r}.dry_run_options, ${r}.concurrency_key, ${r}.concurrency_limit, ${r}.limit_key, ${r}.channel, ${r}.created_at,
  ${r}.started_at, ${r}.abort_requested_at, ${r}.abort_requested_by, ${r}.abort_reason, ${r}.ending,
  coalesce((
    select json_agg(json_build_object(
      'step_id', s.step_id, 'position', s.position, 'action', s.action, 'target', s.target, 'status', s.status,
      'attempts', s.attempts, 'started_at', s.started_at, 'finished_at', s.finished_at, 'output', s.output,
      'error', s.error, 'poll_state', s.poll_state, 'cleared_at', s.cleared_at,
      'compensation_status', s.compensation_status) order by s.position)
    from run_steps s where s.run_id = ${r}.id), '[]'::json) as steps,
  (select json_build_object('id', a.id, 'step_id', a.step_id, 'round', a.round, 'status', a.status,
                            'decided_by', a.decided_by, 'approvers', a.approvers, 'on_timeout', a.on_timeout,
                            'expires_at', a.expires_at, 'due', a.expires_at <= fb_now())
   -- Only the approvals of the run's current retry (migration 0027): an answer given before a retry decides nothing after it.
   from approvals a where a.run_id = ${r}.id and a.retry = ${r}.retries order by a.requested_at desc, a.round desc limit 1) as approval,
  (select json_build_object('seq', e.seq, 'hash', e.hash)
   from timeline_events e where e.chain_id = ${r}.id::text order by e.seq desc limit 1) as head,
  fb_clock() as now`;

/**
 * Claim due runs, and load them in the same round trip. SKIP LOCKED lets
 * several workers (and replicas) claim concurrently without blocking on each
 * other's candidates; the lease makes a claim survive the transaction, and an
 * expired lease (dead worker) makes the run claimable again. A waiting run is
 * due when its approval's deadline passes (its run_at). Oldest first: run_at,
 * then creation. previous_owner counts takeovers. While automation is paused
 * (automation_pauses, src/rails) its runs are not claimed, except to stop
 * them (an abort asked), to let a step in flight finish (a polled step), and
 * dry runs (they change nothing).
 */
export const CLAIM_RUNS = statement('fb_engine_claim_runs', `
with candidates as (
  select id, lease_owner as previous_owner
  from runs
  where status in ('queued', 'running', 'waiting')
    and run_at <= fb_now()
    and (lease_expires_at is null or lease_expires_at < fb_now())
    and (dry_run or abort_requested_at is not null
         or not exists (select 1 from automation_pauses p where p.resumed_at is null and (p.playbook is null or p.playbook = runs.playbook))
         or exists (select 1 from run_steps s where s.run_id = runs.id and s.status = 'running'))
  order by run_at, created_at
  limit $2::int
  for update skip locked
),
claimed as (
  update runs r
  set lease_owner = $1::text, lease_expires_at = fb_now() + ($3::int * interval '1 millisecond')
  from candidates c
  where r.id = c.id
  returning r.*, c.previous_owner
)
select r.previous_owner, ${TURN_STATE('r')} from claimed r`);

/** Renew leases; returns the runs still held and whether someone asked them to abort. */
export const HEARTBEAT = statement('fb_engine_heartbeat', `
  update runs set lease_expires_at = fb_now() + ($2::int * interval '1 millisecond')
  where id in (select jsonb_array_elements_text($3::jsonb)::uuid) and lease_owner = $1::text
  returning id, abort_requested_at is not null as abort_requested`);

/** Give back every lease this worker holds (clean shutdown) so others resume at once. */
export const RELEASE_ALL = statement('fb_engine_release_all', `
  update runs set lease_owner = null, lease_expires_at = null
  where lease_owner = $1::text`);

/** A run this worker leases, as a turn needs it (see TURN_STATE); no row when the lease is gone. */
export const LOAD_RUN = statement('fb_engine_load_run', `
  select ${TURN_STATE('r')} from runs r where r.id = $1::uuid and r.lease_owner = $2::text`);

/** A revision's definition (read once per process and revision). */
export const REVISION_DEFINITION = statement('fb_engine_revision_definition', `
  select definition from playbook_revisions where hash = $1::text`);

/** The fence every worker batch starts with (migration 0011): chain lock, key lock, leased row, unchanged head. Batch. */
export const RUN_GUARD = statement('fb_engine_run_guard', `select fb_run_guard($1::uuid, $2::text, $3::int, $4::text) as now`);

// ---------- transitions of a run (src/engine/transitions.ts) ----------

/** Admit a run: it holds a slot from now on; its steps are materialised. Batch. */
export const START_RUN = statement('fb_engine_start_run', `
  with steps as (
    insert into run_steps (run_id, step_id, position, action)
    select $1::uuid, s.step_id, s.position, s.action
    from jsonb_to_recordset($2::jsonb) as s(step_id text, position int, action text)
    on conflict do nothing
  )
  update runs set status = 'running', started_at = coalesce(started_at, fb_now())
  where id = $1::uuid`);

/** Runs holding a slot of the key, and queued runs created before this one (first come, first served). */
export const KEY_OCCUPANCY = statement('fb_engine_key_occupancy', `
  select count(*) filter (where status in ('running', 'waiting'))::int as active,
         count(*) filter (where status = 'queued' and (created_at, id) < ($3::timestamptz, $2::uuid))::int as ahead,
         exists (select 1 from timeline_events where chain_id = $2::text and kind = 'run.queued') as queued_before
  from runs
  where concurrency_key = $1::text and status in ('running', 'waiting', 'queued') and id <> $2::uuid`);

/** Give the lease back; the run is due again at fb_now() + delay (a timer in the database). Batch. */
export const RELEASE_RUN = statement('fb_engine_release_run', `
  update runs set lease_owner = null, lease_expires_at = null, status = $2::text,
                  run_at = fb_now() + ($3::bigint * interval '1 millisecond')
  where id = $1::uuid`);

/** Still waiting for an approval (woken early): due again at the approval's deadline. Batch. */
export const PARK_UNTIL_DEADLINE = statement('fb_engine_park_until_deadline', `
  update runs set lease_owner = null, lease_expires_at = null, status = 'waiting',
                  run_at = coalesce((select expires_at from approvals where id = $2::uuid and status = 'pending'), fb_now())
  where id = $1::uuid`);

/** A waiting run whose approval was decided (or expired) is running again. Batch. */
export const RESUME_WAITING = statement('fb_engine_resume_waiting', `
  update runs set status = 'running' where id = $1::uuid and status = 'waiting'`);

/** Steps that never ran when a run ends are skipped; the run row records how it ended. Batch. */
export const FINISH_RUN = statement('fb_engine_finish_run', `
  with pending as (
    update run_steps set status = 'skipped', finished_at = fb_now()
    where run_id = $1::uuid and status = 'pending'
  )
  update runs set status = $2::text, finished_at = fb_now(), outcome = $3::jsonb,
                  lease_owner = null, lease_expires_at = null
  where id = $1::uuid`);

/**
 * A slot of the key may be free, or a run ahead of the queue left it: every
 * queued run of the key is due now (admission re-checks, oldest first), and
 * idle workers hear about it. Under the key's lock.
 */
export const WAKE_KEY = statement('fb_engine_wake_key', `
  with woken as (
    update runs set run_at = fb_now()
    where concurrency_key = $1::text and status = 'queued' and run_at > fb_now()
    returning 1
  )
  select pg_notify('firebreak_runnable', 'key') from (select count(*) as n from woken) w where w.n > 0`);

/** Make a run due now (it has something to react to: an answer, a resolve, an abort request). */
export const WAKE_RUN = statement('fb_engine_wake_run', `
  update runs set status = case when status = 'waiting' then 'running' else status end, run_at = fb_now()
  where id = $1::uuid and status in ('queued', 'running', 'waiting')
  returning id`);

export const NOTIFY_RUNNABLE = statement('fb_engine_notify', `select pg_notify('firebreak_runnable', $1::text)`);

/** What an abort or a resolve needs to know about a run before locking it (the key never changes). */
export const RUN_STATE = statement('fb_engine_run_state', `
  select r.status, r.concurrency_key, r.lease_owner, coalesce(r.definition, pr.definition)->>'onResolved' as on_resolved
  from runs r left join playbook_revisions pr on pr.hash = r.revision
  where r.id = $1::uuid`);

/** Abort a run that never started and nobody is driving: nothing to compensate. */
export const ABORT_QUEUED = statement('fb_engine_abort_queued', `
  update runs set status = 'aborted', finished_at = fb_now(), abort_requested_at = fb_now(),
                  abort_requested_by = $2::text, abort_reason = $3::text, lease_owner = null, lease_expires_at = null
  where id = $1::uuid and status = 'queued' and lease_owner is null
  returning id`);

/** The worker decided the run stops, and how it will end: recorded before it compensates. Batch. */
export const MARK_ENDING = statement('fb_engine_mark_ending', `
  update runs set abort_requested_at = coalesce(abort_requested_at, fb_now()),
                  abort_requested_by = coalesce(abort_requested_by, $2::text),
                  abort_reason = coalesce(abort_reason, $3::text),
                  ending = coalesce(ending, $4::text)
  where id = $1::uuid`);

/** Ask a run to stop; its worker compensates and finishes it. */
export const REQUEST_ABORT = statement('fb_engine_request_abort', `
  update runs set abort_requested_at = coalesce(abort_requested_at, fb_now()),
                  abort_requested_by = coalesce(abort_requested_by, $2::text),
                  abort_reason = coalesce(abort_reason, $3::text),
                  status = case when status = 'waiting' then 'running' else status end,
                  run_at = fb_now()
  where id = $1::uuid and status in ('queued', 'running', 'waiting')
  returning id`);

export const SKIP_PENDING_STEPS = statement('fb_engine_skip_pending_steps', `
  update run_steps set status = 'skipped', finished_at = fb_now()
  where run_id = $1::uuid and status = 'pending'`);

export const CANCEL_RUN_APPROVALS = statement('fb_engine_cancel_run_approvals', `
  update approvals set status = 'cancelled', decided_at = fb_now(), decided_by = $2::text
  where run_id = $1::uuid and status = 'pending'
  returning id, step_id`);

// ---------- steps and attempts ----------

/** A step's row after a change (null keeps a field; see the callers for each). Batch. */
export const UPDATE_STEP = statement('fb_engine_update_step', `
  update run_steps set
    status = $3::text,
    attempts = coalesce($4::int, attempts),
    started_at = case when $3::text = 'running' then coalesce(started_at, fb_now()) else started_at end,
    finished_at = case when $3::text in ('succeeded', 'failed', 'skipped', 'denied') then fb_now() else finished_at end,
    output = coalesce($5::jsonb, output),
    error = $6::jsonb,
    poll_state = $7::jsonb,
    target = coalesce($8::text, target),
    cleared_at = case when $9::boolean then coalesce(cleared_at, fb_now()) else cleared_at end
  where run_id = $1::uuid and step_id = $2::text
  returning started_at`);

/**
 * An attempt starts: its row (a re-drive finds it there: same key) and the
 * step's new state, in one statement. Returns the step's started_at. Batch.
 */
export const BEGIN_ATTEMPT = statement('fb_engine_begin_attempt', `
  with attempt as (
    insert into step_attempts (run_id, step_id, attempt, idempotency_key, worker)
    values ($1::uuid, $2::text, $3::int, $4::text, $5::text)
    on conflict do nothing
  )
  update run_steps set status = 'running', attempts = $3::int, started_at = coalesce(started_at, fb_now()),
                       error = null, poll_state = $6::jsonb, target = coalesce($7::text, target),
                       cleared_at = case when $8::boolean then coalesce(cleared_at, fb_now()) else cleared_at end
  where run_id = $1::uuid and step_id = $2::text
  returning started_at`);

/**
 * An attempt ends ($4: succeeded | failed) and its step with it ($6: succeeded,
 * failed, or pending for a retry), in one statement. Batch.
 */
export const END_ATTEMPT = statement('fb_engine_end_attempt', `
  with attempt as (
    update step_attempts set status = $4::text, finished_at = fb_now(), error = $5::jsonb
    where run_id = $1::uuid and step_id = $2::text and attempt = $3::int
  )
  update run_steps set status = $6::text, attempts = $3::int,
                       finished_at = case when $6::text in ('succeeded', 'failed') then fb_now() else finished_at end,
                       output = coalesce($7::jsonb, output), error = $5::jsonb, poll_state = null
  where run_id = $1::uuid and step_id = $2::text`);

export const SET_COMPENSATION = statement('fb_engine_set_compensation', `
  update run_steps set compensation_status = $3::text,
    status = case when $3::text = 'succeeded' then 'compensated' else status end
  where run_id = $1::uuid and step_id = $2::text`);

/** Recent real (non-dry) executions of an action on a target: the policy's `history`. */
/** $3, $4: runs left out (the run itself; a replay also leaves out the run it replays). */
export const HISTORY = statement('fb_engine_history', `
  select s.run_id, r.playbook, s.step_id, s.action, s.target, s.status, coalesce(s.started_at, s.cleared_at) as at,
         coalesce((select d->>'impact' from jsonb_array_elements(coalesce(r.definition, pr.definition)->'steps') d
                   where d->>'id' = s.step_id limit 1), 'high') as impact
  from run_steps s
  join runs r on r.id = s.run_id
  left join playbook_revisions pr on pr.hash = r.revision
  where s.action = $1::text and s.target = $2::text and not r.dry_run and s.run_id not in ($3::uuid, $4::uuid)
    and s.cleared_at > fb_now() - interval '24 hours'
  order by s.cleared_at desc limit 50`);

// ---------- approvals ----------

/** The deadline is fb_now() + timeout: the same instant the waiting run's run_at gets in this batch. Batch. */
export const INSERT_APPROVAL = statement('fb_engine_insert_approval', `
  insert into approvals (id, run_id, step_id, round, approvers, min_approvals, reasons, request, on_timeout, expires_at, retry)
  values ($1::uuid, $2::uuid, $3::text, $4::int, $5::jsonb, $6::int, $7::jsonb, $8::jsonb, $9::text,
          fb_now() + ($10::bigint * interval '1 millisecond'), (select retries from runs where id = $2::uuid))
  on conflict (run_id, step_id, retry, round) do nothing`);

/** Expire a pending approval past its deadline (the guard already made sure nobody answered it). Batch. */
export const EXPIRE_APPROVAL = statement('fb_engine_expire_approval', `
  update approvals set status = 'expired', decided_at = fb_now(), decided_by = 'system'
  where id = $1::uuid and status = 'pending' and expires_at <= fb_now()`);

export const APPROVAL_BY_ID = statement('fb_engine_approval_by_id', `
  select a.id, a.run_id, a.step_id, a.round, a.status, a.approvers, a.min_approvals, a.reasons, a.request,
         a.on_timeout, a.requested_at, a.expires_at, a.decided_by, a.decided_at,
         r.playbook, r.started_by, r.status as run_status, r.dry_run, fb_now() as now
  from approvals a join runs r on r.id = a.run_id
  where a.id = $1::uuid`);

export const APPROVAL_RUN = statement('fb_engine_approval_run', `select run_id from approvals where id = $1::uuid`);

export const APPROVAL_VOTES = statement('fb_engine_approval_votes', `
  select voter, decision, at from approval_votes where approval_id = $1::uuid order by at`);

export const INSERT_VOTE = statement('fb_engine_insert_vote', `
  insert into approval_votes (approval_id, voter, decision) values ($1::uuid, $2::text, $3::text)
  on conflict do nothing returning voter`);

/** Decide once: only a pending approval changes, so two answers cannot both win. */
export const DECIDE_APPROVAL = statement('fb_engine_decide_approval', `
  update approvals set status = $2::text, decided_by = $3::text, decided_at = fb_now()
  where id = $1::uuid and status = 'pending'
  returning decided_at, extract(epoch from decided_at - requested_at) * 1000 as waited_ms`);

/**
 * What a recorded run did, for a replay of it (src/engine/scripted.ts): each
 * step's final status, output and error; each approval's answer; and the
 * `now` and `history` of the first policy decision about each step.
 */
export const RECORDED_RUN = statement('fb_engine_recorded_run', `
  select r.id, r.finished_at is not null as finished,
    coalesce((select json_object_agg(s.step_id, json_build_object('status', s.status, 'output', s.output, 'error', s.error))
              from run_steps s where s.run_id = r.id), '{}'::json) as steps,
    coalesce((select json_agg(json_build_object('stepId', a.step_id, 'round', a.round, 'status', a.status, 'decidedBy', a.decided_by)
                              order by a.step_id, a.round)
              from approvals a where a.run_id = r.id), '[]'::json) as approvals,
    coalesce((select json_object_agg(d.step_id, d.context) from (
                select distinct on (e.data->>'stepId') e.data->>'stepId' as step_id,
                       jsonb_build_object('now', e.data->'input'->'now', 'history', e.data->'input'->'history') as context
                from timeline_events e
                where e.chain_id = r.id::text and e.kind = 'policy.decision' and e.data ? 'stepId'
                order by e.data->>'stepId', e.seq) d), '{}'::json) as decisions
  from runs r where r.id = $1::uuid`);

// ---------- creating runs ----------

// ---------- repairs and stuck runs (src/engine/repair.ts, src/engine/stuck.ts) ----------

/**
 * What a repair needs to know about a run, read again under its chain lock:
 * its state, and the step a retry continues from by default: the first step
 * (by position) that failed, was denied, was cut short, or never got its turn
 * (skipped when the run ended, which a `step.skipped` event would otherwise
 * say: a step skipped by its own `when:` is not one to continue from).
 */
export const REPAIR_STATE = statement('fb_engine_repair_state', `
  select r.id, r.playbook, r.status, r.dry_run, r.concurrency_key, r.retries, r.started_at, r.created_at,
         coalesce(r.definition, pr.definition) -> 'steps' as steps,
         coalesce((select json_agg(json_build_object('id', s.step_id, 'position', s.position, 'status', s.status) order by s.position)
                   from run_steps s where s.run_id = r.id), '[]'::json) as step_rows,
         (select s.step_id from run_steps s
          where s.run_id = r.id
            and (s.status in ('failed', 'denied', 'running', 'pending')
                 or (s.status = 'skipped' and not exists (
                       select 1 from timeline_events e
                       where e.chain_id = r.id::text and e.kind = 'step.skipped' and e.data->>'stepId' = s.step_id)))
          order by s.position limit 1) as resume_step
  from runs r left join playbook_revisions pr on pr.hash = r.revision
  where r.id = $1::uuid
  for update of r`);

/**
 * A finished run continues: steps from position $2 on go back to pending
 * (attempt numbers kept, so the next attempt gets the next number and a new
 * idempotency key; outputs, errors, clearance and compensation cleared: the
 * policy is asked again), steps before it keep their results.
 */
export const RESET_STEPS_FROM = statement('fb_engine_reset_steps_from', `
  update run_steps set status = 'pending', started_at = null, finished_at = null, output = null, error = null,
                       poll_state = null, cleared_at = null, compensation_status = null
  where run_id = $1::uuid and position >= $2::int`);

/** The run is queued again (admission and concurrency again), with everything its end recorded cleared. */
export const RETRY_RUN = statement('fb_engine_retry_run', `
  update runs set status = 'queued', run_at = fb_now(), finished_at = null, outcome = null, ending = null,
                  abort_requested_at = null, abort_requested_by = null, abort_reason = null,
                  lease_owner = null, lease_expires_at = null, stuck_reported_at = null, retries = retries + 1
  where id = $1::uuid and status in ('failed', 'aborted', 'cancelled') and not dry_run
  returning retries`);

/**
 * A person ends a run now, without compensation: the lease is cleared, so a
 * worker still holding it fails its guard (FBL01) and writes nothing more.
 */
export const CANCEL_RUN = statement('fb_engine_cancel_run', `
  update runs set status = 'cancelled', finished_at = fb_now(), outcome = $3::jsonb, ending = 'cancelled',
                  abort_requested_at = coalesce(abort_requested_at, fb_now()),
                  abort_requested_by = coalesce(abort_requested_by, $2::text),
                  abort_reason = coalesce(abort_reason, $4::text),
                  lease_owner = null, lease_expires_at = null
  where id = $1::uuid and status in ('queued', 'running', 'waiting')
  returning extract(epoch from fb_now() - coalesce(started_at, created_at)) * 1000 as duration_ms`);

/** Steps cut short by a cancel: the attempt in flight and its step are recorded failed. */
export const CANCEL_RUNNING_STEPS = statement('fb_engine_cancel_running_steps', `
  with steps as (
    update run_steps set status = 'failed', finished_at = fb_now(), error = $2::jsonb, poll_state = null
    where run_id = $1::uuid and status = 'running'
    returning step_id, attempts
  ),
  attempts as (
    update step_attempts a set status = 'failed', finished_at = fb_now(), error = $2::jsonb
    from steps s
    where a.run_id = $1::uuid and a.step_id = s.step_id and a.attempt = s.attempts and a.finished_at is null
  )
  select step_id, attempts from steps`);

/**
 * Runs that stopped making progress. Progress is the run's last timeline
 * event (run.stuck itself is not progress) or the timer it is parked on
 * (run_at: retry backoff, a poll, an approval's deadline), whichever is later.
 * A \`running\` run is stuck when that is longer ago than its current step's
 * timeout (else $2, the default) plus the lease ($1); a \`waiting\` run when its
 * approval's deadline (its run_at) passed more than a lease ago and nobody
 * picked it up. Runs of a paused playbook are held, not stuck. All times from
 * fb_now().
 */
const STUCK_SQL = `
  with active as (
    select r.id, r.playbook, r.status, r.run_at, r.stuck_reported_at, r.created_at,
           (select e.time from timeline_events e
            where e.chain_id = r.id::text and e.kind <> 'run.stuck'
            order by e.seq desc limit 1) as last_event_at,
           (select s.step_id from run_steps s
            where s.run_id = r.id and s.status in ('running', 'pending') order by s.position limit 1) as step_id,
           coalesce(r.definition, pr.definition) -> 'steps' as steps
    from runs r left join playbook_revisions pr on pr.hash = r.revision
    where r.status in ('running', 'waiting')
      and not exists (select 1 from automation_pauses p where p.resumed_at is null and (p.playbook is null or p.playbook = r.playbook))
  ),
  measured as (
    select a.*, greatest(coalesce(a.last_event_at, a.created_at), a.run_at) as since,
           case when a.status = 'waiting' then $1::bigint
                else $1::bigint + coalesce((select (d->>'timeoutMs')::bigint from jsonb_array_elements(a.steps) d
                                            where d->>'id' = a.step_id limit 1), $2::bigint)
           end as threshold_ms
    from active a
  )
  select id, playbook, status, step_id, since, threshold_ms::int8 as threshold_ms, last_event_at, stuck_reported_at
  from measured
  where since + threshold_ms * interval '1 millisecond' < fb_now()`;

/** Stuck runs, oldest stall first ($1 lease ms, $2 default step timeout ms). */
export const STUCK_RUNS = statement('fb_engine_stuck_runs', `${STUCK_SQL} order by since, id`);

/**
 * Claim the notice for a run's current stall: under the run's chain lock, the
 * UPDATE decides (still stuck, and not yet reported since its last progress),
 * so two replicas send one notice per stall.
 */
export const CLAIM_STUCK_NOTICE = statement('fb_engine_claim_stuck_notice', `
  with stuck as (${STUCK_SQL})
  update runs r set stuck_reported_at = fb_now()
  from stuck
  where r.id = $3::uuid and stuck.id = r.id
    and (r.stuck_reported_at is null or r.stuck_reported_at < stuck.since)
  returning stuck.step_id, stuck.since, stuck.last_event_at, stuck.threshold_ms`);

/** Store playbook definitions once per content; answers each one's revision hash (computed by the database). */
export const STORE_REVISIONS = statement('fb_engine_store_revisions', `
  with input as (
    select * from jsonb_to_recordset($1::jsonb) as d(name text, definition jsonb, file text, source text)
  ),
  stored as (
    insert into playbook_revisions (hash, name, definition, file, source)
    select distinct on (fb_revision_hash(definition)) fb_revision_hash(definition), name, definition, file, source from input
    -- First seen in a dry run's request (no file), now loaded from a file: it is the catalog's now.
    on conflict (hash) do update set file = excluded.file, source = coalesce(playbook_revisions.source, excluded.source)
      where playbook_revisions.file is null and excluded.file is not null
  )
  select name, fb_revision_hash(definition) as hash from input`);

export const INSERT_MANUAL_RUN = statement('fb_engine_insert_manual_run', `
  insert into runs (id, playbook, revision, playbook_hash, trigger, started_by, alert, params, dry_run, dedup_key,
                    concurrency_key, concurrency_limit, channel, episode_id, dry_run_options)
  values ($1::uuid, $2::text, $3::text, $4::text, $5::text, $6::text, $7::jsonb, $8::jsonb, $9::boolean, $10::text,
          $11::text, $12::int, $13::text, $14::bigint, $15::jsonb)
  on conflict (dedup_key) do nothing
  returning id`);

export const RUN_BY_DEDUP_KEY = statement('fb_engine_run_by_dedup_key', `select id from runs where dedup_key = $1::text`);

// ---------- reads for the API and CLI ----------

export const RUN_BY_ID = `
  select r.id, r.playbook, r.revision, r.status, r.trigger, r.started_by, r.episode_id, r.alert, r.params, r.dry_run,
         r.dry_run_options, r.channel, r.created_at, r.started_at, r.finished_at, r.abort_reason, r.outcome,
         r.concurrency_key, r.retries, coalesce(r.definition, pr.definition) as definition
  from runs r left join playbook_revisions pr on pr.hash = r.revision
  where r.id = $1::uuid`;

export const LIST_RUNS = `
  select id, playbook, revision, status, trigger, started_by, episode_id, dry_run, created_at, started_at, finished_at, retries
  from runs
  where ($1::text is null or status = $1::text) and ($2::text is null or playbook = $2::text)
  order by created_at desc, id
  limit $3::int`;

export const RUNS_BY_IDS = `
  select id, playbook, revision, status, trigger, started_by, episode_id, dry_run, created_at, started_at, finished_at, retries
  from runs where id = any($1::uuid[])`;

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

export const LIST_ALERTS = `
  select e.id, e.source, e.fingerprint, e.starts_at, e.ends_at, e.status, e.deliveries, e.summary, e.severity,
         e.labels, e.first_seen_at, e.last_seen_at, e.resolved_at,
         coalesce((select json_agg(r.id order by r.created_at) from runs r where r.episode_id = e.id), '[]'::json) as runs,
         -- What became of the episode per playbook (safety rails): the newest outcome that says more than
         -- "deduplicated" (a re-send of an alert whose run exists), else the newest.
         coalesce((select json_agg(json_build_object('playbook', o.playbook, 'outcome', o.outcome, 'runId', o.run_id,
                                                     'reason', o.reason, 'at', o.created_at) order by o.playbook nulls first)
                   from (select distinct on (coalesce(x.playbook, '')) x.* from alert_outcomes x where x.episode_id = e.id
                         order by coalesce(x.playbook, ''), (x.outcome = 'deduplicated'), x.id desc) o), '[]'::json) as outcomes
  from alert_episodes e
  where ($1::text is null or e.status = $1::text) and ($2::text is null or e.source = $2::text)
    and ($4::bigint is null or e.first_seen_at >= fb_now() - $4::bigint * interval '1 millisecond')
    and ($5::timestamptz is null or e.first_seen_at >= $5::timestamptz)
    and ($6::bigint is null or e.id < $6::bigint)
  order by e.first_seen_at desc, e.id desc
  limit $3::int`;

export const EPISODE_BY_ID = `select id, alert from alert_episodes where id = $1::bigint`;
