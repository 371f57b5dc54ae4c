-- Durable runs. All run state lives here; a worker holds a run only through
-- a lease (lease_owner, lease_expires_at) that it renews by heartbeat.
create table runs (
  id                uuid primary key,
  playbook          text        not null,
  -- Snapshot of the playbook definition at creation: a run keeps executing
  -- the playbook it started with even if the file changes underneath.
  definition        jsonb       not null,
  playbook_hash     text        not null,
  status            text        not null default 'queued'
                    check (status in ('queued', 'running', 'waiting', 'succeeded', 'failed', 'aborted', 'cancelled')),
  trigger           text        not null check (trigger in ('alert', 'schedule', 'manual')),
  started_by        text,
  episode_id        bigint references alert_episodes (id),
  alert             jsonb,
  params            jsonb       not null default '{}'::jsonb,
  dry_run           boolean     not null default false,
  -- Exactly-once creation: '<episode>:<playbook>', 'schedule:<playbook>:<tick>', or a client key.
  dedup_key         text        unique,
  concurrency_key   text,
  concurrency_limit integer     check (concurrency_limit >= 1),
  channel           text,
  created_at        timestamptz not null default now(),
  started_at        timestamptz,
  finished_at       timestamptz,
  -- When the run next needs a worker (retry backoff, wait step, poll): a timer in the database.
  run_at            timestamptz not null default now(),
  lease_owner       text,
  lease_expires_at  timestamptz,
  abort_requested_at timestamptz,
  abort_requested_by text,
  abort_reason      text,
  outcome           jsonb
);
create index runs_runnable_idx on runs (run_at) where status in ('queued', 'running');
create index runs_recent_idx on runs (created_at desc, id);
create index runs_status_idx on runs (status, created_at desc);
create index runs_episode_idx on runs (episode_id) where episode_id is not null;
create index runs_concurrency_idx on runs (concurrency_key, status) where concurrency_key is not null;

create table run_steps (
  run_id        uuid        not null references runs (id),
  step_id       text        not null,
  position      integer     not null,
  action        text        not null,
  -- What the step acts on (host, script, ...), for the policy's `history` input.
  target        text,
  status        text        not null default 'pending'
                check (status in ('pending', 'running', 'succeeded', 'failed', 'skipped', 'denied', 'compensated')),
  attempts      integer     not null default 0,
  started_at    timestamptz,
  finished_at   timestamptz,
  output        jsonb,
  error         jsonb,
  -- Poll state for long steps (prometheus.wait, wait) between timer wake-ups.
  poll_state    jsonb,
  -- Set once the policy decision (and any approval) cleared this step.
  cleared_at    timestamptz,
  compensation_status text check (compensation_status in ('pending', 'running', 'succeeded', 'failed', 'skipped')),
  primary key (run_id, step_id),
  unique (run_id, position)
);

-- One row per attempt. The key is stable across a crash: an attempt cut
-- short is driven again with the same key; only a recorded failure moves on.
create table step_attempts (
  run_id          uuid        not null,
  step_id         text        not null,
  attempt         integer     not null check (attempt >= 1),
  idempotency_key text        not null unique,
  status          text        not null default 'running' check (status in ('running', 'succeeded', 'failed')),
  started_at      timestamptz not null default now(),
  finished_at     timestamptz,
  worker          text,
  error           jsonb,
  primary key (run_id, step_id, attempt),
  foreign key (run_id, step_id) references run_steps (run_id, step_id)
);

create table approvals (
  id            uuid primary key,
  run_id        uuid        not null references runs (id),
  step_id       text        not null,
  -- escalations create a new round for the same step
  round         integer     not null default 1,
  status        text        not null default 'pending'
                check (status in ('pending', 'approved', 'rejected', 'expired', 'cancelled')),
  approvers     jsonb       not null default '[]'::jsonb,
  min_approvals integer     not null default 1 check (min_approvals >= 1),
  reasons       jsonb       not null default '[]'::jsonb,
  request       jsonb       not null,
  on_timeout    text        not null default 'abort' check (on_timeout in ('abort', 'skip', 'escalate')),
  requested_at  timestamptz not null default now(),
  expires_at    timestamptz,
  decided_by    text,
  decided_at    timestamptz,
  unique (run_id, step_id, round),
  foreign key (run_id, step_id) references run_steps (run_id, step_id)
);
create index approvals_pending_idx on approvals (expires_at) where status = 'pending';

-- Each person's answer, once: two clicks from the same person are one vote.
create table approval_votes (
  approval_id uuid        not null references approvals (id),
  voter       text        not null,
  decision    text        not null check (decision in ('approve', 'reject')),
  at          timestamptz not null default now(),
  primary key (approval_id, voter)
);
create unique index runs_episode_playbook_uq on runs (episode_id, playbook) where episode_id is not null;
create index run_steps_history_idx on run_steps (action, target, started_at desc) where target is not null;
