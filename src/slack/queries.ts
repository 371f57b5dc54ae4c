/** Named SQL for the Slack concern (tables in migrations/0005_slack.sql). */

// ---- projection (timeline -> outbox) ----

export const ENSURE_THREAD = `insert into slack_threads (run_id) values ($1::uuid) on conflict do nothing`;

/** Serialises projectors of one run across replicas; the row's last_seq is re-read after the wait. */
export const LOCK_THREAD = `select run_id, last_seq, channel, done from slack_threads where run_id = $1::uuid for update`;

/**
 * The chain up to a point (the projector folds it from the start). Safe without the chain lock: appends to one chain
 * are serialised by that lock and commit in seq order, so what we see is
 * always a gap-free prefix of the chain.
 */
export const EVENTS_UP_TO = `
  select id, chain_id, seq, run_id, time, kind, actor, data, prev_hash, hash from timeline_events
  where chain_id = $1::text and seq <= $2::int
  order by seq`;

export const ADVANCE_THREAD = `
  update slack_threads set last_seq = $2::int, channel = $3::text, done = $4::boolean, updated_at = now()
  where run_id = $1::uuid`;

export const RUN_FOR_SLACK = `
  select r.id, r.playbook, r.status, r.trigger, r.started_by, r.alert, r.params, r.dry_run, r.channel, r.created_at,
         r.started_at, r.finished_at, r.abort_reason, r.outcome, coalesce(r.definition, pr.definition) as definition,
         coalesce((r.dry_run_options->>'quiet')::boolean, false) as quiet
  from runs r left join playbook_revisions pr on pr.hash = r.revision
  where r.id = $1::uuid`;

export const APPROVAL_FOR_SLACK = `
  select id, run_id, step_id, round, status, approvers, min_approvals, reasons, request, on_timeout,
         requested_at, expires_at, decided_by, decided_at
  from approvals where id = $1::uuid`;

/**
 * Runs whose timeline may be ahead of their projection: active runs, runs
 * created lately (one that finished before its first projection), and
 * projections not marked done. The catch-up scan heals a missed in-process
 * notification or a crash between an event's commit and its projection.
 */
export const RUNS_TO_PROJECT = `
  select c.id from (
    select id from runs where status in ('queued', 'running', 'waiting')
    union
    select id from runs where created_at > now() - interval '15 minutes'
    union
    select run_id from slack_threads where not done
  ) c
  left join slack_threads t on t.run_id = c.id
  where coalesce(t.last_seq, 0) < coalesce((select max(e.seq) from timeline_events e where e.chain_id = c.id::text), 0)
  limit 200`;

// ---- outbox ----

export const INSERT_OUTBOX = `
  insert into slack_outbox (thread_key, run_id, kind, method, ref, payload)
  values ($1::text, $2::uuid, $3::text, $4::text, $5::text, $6::jsonb)
  on conflict (ref) where ref is not null do nothing`;

/**
 * Claim the head of each thread (its oldest pending row) when it is due and
 * not leased. Only heads are claimable, so a thread's rows go out one at a
 * time, in order, whichever replica sends them. SKIP LOCKED lets replicas
 * claim concurrently; a row another claimer just leased is re-checked after
 * its lock (EvalPlanQual) and drops out because locked_until is now in the
 * future. The lease (not the transaction) covers the Web API call, so no
 * database transaction is held open while Slack is slow.
 */
export const CLAIM_OUTBOX = `
  with heads as (
    select distinct on (thread_key) id
    from slack_outbox
    where status = 'pending'
    order by thread_key, id
  ), due as (
    select o.id from slack_outbox o
    join heads h on h.id = o.id
    where o.next_attempt_at <= now() and (o.locked_until is null or o.locked_until < now())
    order by o.id
    limit $2::int
    for update of o skip locked
  )
  update slack_outbox o
  set locked_by = $1::text, locked_until = now() + ($3::int * interval '1 millisecond')
  from due where o.id = due.id
  returning o.id, o.thread_key, o.run_id, o.kind, o.method, o.ref, o.payload, o.attempts`;

export const MARK_SENT = `
  update slack_outbox set status = 'sent', sent_at = now(), attempts = attempts + 1, locked_by = null, locked_until = null, last_error = null
  where id = $1::bigint and locked_by = $2::text`;

export const MARK_RETRY = `
  update slack_outbox set attempts = attempts + $5::int, next_attempt_at = now() + ($3::int * interval '1 millisecond'),
                          last_error = $4::text, locked_by = null, locked_until = null
  where id = $1::bigint and locked_by = $2::text`;

export const MARK_GIVEN_UP = `
  update slack_outbox set status = $3::text, attempts = attempts + 1, last_error = $4::text, locked_by = null, locked_until = null,
                          sent_at = now()
  where id = $1::bigint and locked_by = $2::text`;

export const SAVE_MESSAGE = `
  insert into slack_messages (ref, channel, ts) values ($1::text, $2::text, $3::text)
  on conflict (ref) do nothing`;

export const FIND_MESSAGE = `select channel, ts from slack_messages where ref = $1::text`;

export const PRUNE_OUTBOX = `delete from slack_outbox where status <> 'pending' and sent_at < now() - interval '3 days'`;

// ---- requests ----

/** Inserted once per accepted signature: a second insert of the same one is a replay. */
export const REMEMBER_SIGNATURE = `
  insert into slack_seen_requests (signature) values ($1::text) on conflict do nothing returning signature`;

export const PRUNE_SIGNATURES = `delete from slack_seen_requests where seen_at < now() - interval '15 minutes'`;

// ---- slash command reads ----

export const RUN_IDS_BY_PREFIX = `select id from runs where id::text like $1::text || '%' order by created_at desc limit 2`;

export const ACTIVE_RUNS = `
  select r.id, r.playbook, r.status, r.dry_run, r.created_at,
         (select count(*)::int from approvals a where a.run_id = r.id and a.status = 'pending') as pending_approvals
  from runs r where r.status in ('queued', 'running', 'waiting')
  order by r.created_at desc limit 15`;
