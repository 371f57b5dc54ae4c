-- Slack. Nothing here is the source of truth for a run (the timeline is);
-- these tables make posting to Slack durable and ordered, so a Slack outage
-- delays messages but never loses one, and never holds up the engine.

-- Each run's projection into Slack: how far its timeline has been turned into
-- outbox rows. Rows are written in the transaction that advances last_seq, so
-- an event becomes messages exactly once even with several replicas (the row
-- lock serialises them) or after a crash (the next pass resumes at last_seq).
create table slack_threads (
  run_id     uuid        primary key references runs (id),
  last_seq   integer     not null default 0,
  -- Where the run's messages go; null when neither the playbook nor SLACK_CHANNEL names one.
  channel    text,
  -- The run finished and its last event was projected: the catch-up scan skips it.
  done       boolean     not null default false,
  updated_at timestamptz not null default now()
);
create index slack_threads_open_idx on slack_threads (run_id) where not done;

-- Outbound Web API calls, sent by any replica's sender loop.
--   thread_key orders rows: a row is sent only after every earlier row with the
--   same key was sent or given up on (a run's messages share its id as key).
--   ref names the message a chat.postMessage creates (run:<id> for a run's
--   first message, approval:<id> for an approval), so later rows can reply in
--   its thread or chat.update it; its ts is then kept in slack_messages.
create table slack_outbox (
  id              bigint      generated always as identity primary key,
  thread_key      text        not null,
  run_id          uuid,
  kind            text        not null,
  method          text        not null check (method in ('chat.postMessage', 'chat.update', 'chat.postEphemeral')),
  ref             text,
  payload         jsonb       not null,
  status          text        not null default 'pending' check (status in ('pending', 'sent', 'failed', 'skipped')),
  attempts        integer     not null default 0,
  next_attempt_at timestamptz not null default now(),
  -- A claim is a lease: a sender that dies mid-call loses it when locked_until passes.
  locked_by       text,
  locked_until    timestamptz,
  last_error      text,
  created_at      timestamptz not null default now(),
  sent_at         timestamptz
);
create index slack_outbox_pending_idx on slack_outbox (thread_key, id) where status = 'pending';
create index slack_outbox_sent_idx on slack_outbox (sent_at) where status <> 'pending';
-- Belt and braces: a message with a ref (an approval!) is enqueued at most once.
create unique index slack_outbox_ref_uq on slack_outbox (ref) where ref is not null;

-- Messages the bot posted, by ref: where to reply (thread_ts) and what to chat.update.
create table slack_messages (
  ref        text        primary key,
  channel    text        not null,
  ts         text        not null,
  created_at timestamptz not null default now()
);

-- Signatures of Slack requests already accepted, for replay protection across
-- replicas. Only the 5-minute window matters; older rows are pruned.
create table slack_seen_requests (
  signature text        primary key,
  seen_at   timestamptz not null default now()
);
create index slack_seen_requests_seen_idx on slack_seen_requests (seen_at);
