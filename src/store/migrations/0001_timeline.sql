-- The audit trail. One hash chain per run (chain_id = run id, or 'system' for
-- events that belong to no run). Append-only: the database itself refuses
-- UPDATE, DELETE and TRUNCATE, so even a bug (or a person with the app's
-- credentials) cannot rewrite history without disabling the trigger first,
-- and `firebreak audit verify` catches that through the hashes.
create table timeline_events (
  id          bigint generated always as identity primary key,
  chain_id    text        not null,
  seq         integer     not null check (seq >= 1),
  run_id      uuid,
  time        timestamptz not null,
  kind        text        not null check (kind ~ '^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$'),
  actor       text        not null,
  data        jsonb       not null default '{}'::jsonb,
  prev_hash   text        not null check (prev_hash ~ '^[0-9a-f]{64}$'),
  hash        text        not null check (hash ~ '^[0-9a-f]{64}$'),
  -- A chain cannot fork: one event per position.
  unique (chain_id, seq)
);
create index timeline_events_run_idx on timeline_events (run_id, seq) where run_id is not null;
create index timeline_events_kind_idx on timeline_events (kind, time);

create function timeline_events_append_only() returns trigger
language plpgsql as $$
begin
  raise exception 'timeline_events is append-only: % is not allowed', tg_op
    using errcode = 'insufficient_privilege';
end;
$$;

create trigger timeline_events_no_update_delete
  before update or delete on timeline_events
  for each row execute function timeline_events_append_only();

create trigger timeline_events_no_truncate
  before truncate on timeline_events
  for each statement execute function timeline_events_append_only();
