-- Automation safety rails (docs/safety-rails.md): the kill switch, silences,
-- an outcome for every alert, storm limits and circuit breakers, stuck runs.

-- A pause of everything (playbook null) or of one playbook. A row is never
-- deleted: a resume closes it, so who paused, when and why stays readable.
-- At most one open pause per scope.
create table automation_pauses (
  id            bigint generated always as identity primary key,
  playbook      text check (playbook <> ''),
  paused_at     timestamptz not null default fb_now(),
  paused_by     text not null,
  reason        text not null,
  -- 'person' (CLI, API, console, Slack) or 'circuit_breaker' (the run that tripped it in run_id).
  source        text not null default 'person' check (source in ('person', 'circuit_breaker')),
  run_id        uuid references runs (id),
  breaker_key   text,
  resumed_at    timestamptz,
  resumed_by    text,
  resume_reason text,
  check ((resumed_at is null) = (resumed_by is null))
);
create unique index automation_pauses_open_uq on automation_pauses (coalesce(playbook, '')) where resumed_at is null;

-- Silences (maintenance windows): Alertmanager matchers, all of which must
-- match. Matching alerts are stored and recorded as `suppressed`.
create table silences (
  id          uuid primary key,
  -- [{ "name", "op" ('=', '!=', '=~', '!~'), "value" }]
  matchers    jsonb not null check (jsonb_typeof(matchers) = 'array' and jsonb_array_length(matchers) > 0),
  starts_at   timestamptz not null default fb_now(),
  ends_at     timestamptz not null,
  reason      text not null check (reason <> ''),
  created_by  text not null,
  created_at  timestamptz not null default fb_now(),
  expired_at  timestamptz,
  expired_by  text,
  check (ends_at > starts_at)
);
create index silences_active_idx on silences (ends_at) where expired_at is null;

-- What became of every alert notification, per playbook it matched
-- (playbook null: `no_match`). Written by ingest in the statement that
-- stores the notification.
-- No foreign keys: rows are written in the statement that creates their
-- notification and episode (a key check per alert would cost more than the row).
create table alert_outcomes (
  id              bigint generated always as identity primary key,
  notification_id bigint not null,
  episode_id      bigint,
  playbook        text,
  outcome         text not null check (outcome in ('started', 'deduplicated', 'throttled', 'cooldown', 'suppressed', 'paused', 'no_match')),
  run_id          uuid,
  silence_id      uuid,
  reason          text not null,
  created_at      timestamptz not null default fb_now(),
  check ((outcome = 'no_match') = (playbook is null))
);
create index alert_outcomes_episode_idx on alert_outcomes (episode_id, id);

-- The rails key of a run (its playbook's `limits.key`, rendered; '' = the
-- whole playbook): runs started per window, cooldown after one ended and
-- failures in a row are counted per (playbook, limit_key). Null for runs the
-- rails do not count (dry runs, runs started by hand).
alter table runs add column limit_key text;
create index runs_limit_key_idx on runs (playbook, limit_key, created_at) where limit_key is not null;
create index runs_limit_key_finished_idx on runs (playbook, limit_key, finished_at) where limit_key is not null and finished_at is not null;

-- Stuck runs: when the notice for the run's current stall was sent (one per stall).
alter table runs add column stuck_reported_at timestamptz;
-- How many times a person had a finished run continue (`firebreak retry`).
alter table runs add column retries integer not null default 0 check (retries >= 0);

-- What the rails say about one more alert run of (playbook, key), before the
-- window count (the caller ranks runs of one group against `in_window`):
-- `suppressed` (an active silence: the caller names it), `paused`,
-- `cooldown`, or null (free to start unless the window is full). Ingest and
-- dry runs (which only report it) ask the same function. A caller that
-- counts takes the key's advisory lock (7272) first, so two replicas never
-- both see a free slot. One SELECT in SQL, so the planner inlines it into
-- ingest's statement: each subquery runs only when its rail is configured.
create function fb_rails_verdict(p_playbook text, p_key text, p_max_runs integer, p_per_ms bigint,
                                 p_cooldown_ms bigint, p_cooldown_text text, p_silence uuid)
returns table (verdict text, reason text, in_window integer)
language sql stable as $$
  select
    case when s.silenced then 'suppressed' when pz.paused_by is not null then 'paused' when cd.until > fb_now() then 'cooldown' end,
    case
      when s.silenced then null
      when pz.paused_by is not null then format('%s paused by %s at %s: %s',
        case when pz.playbook is null then 'all automation is' else format('playbook %s is', pz.playbook) end,
        pz.paused_by, to_char(pz.paused_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), pz.reason)
      when cd.until > fb_now() then format('cooldown %s: a run for %s ended at %s; new runs wait until %s', p_cooldown_text,
        case when p_key = '' then 'this playbook' else format('key %s', p_key) end,
        to_char(cd.ended at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        to_char(cd.until at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
    end,
    case when p_max_runs is null then 0 else (
      select count(*)::int from runs
      where playbook = p_playbook and limit_key = p_key and created_at > fb_now() - p_per_ms * interval '1 millisecond') end
  from (select p_silence is not null and exists (
          select 1 from silences where id = p_silence and expired_at is null and starts_at <= fb_now() and ends_at > fb_now())
        as silenced) s
  left join lateral (
    select p.playbook, p.paused_by, p.paused_at, p.reason from automation_pauses p
    where p.resumed_at is null and (p.playbook is null or p.playbook = p_playbook)
    order by p.playbook nulls first limit 1) pz on true
  left join lateral (
    select max(r.finished_at) as ended, max(r.finished_at) + p_cooldown_ms * interval '1 millisecond' as until from runs r
    where p_cooldown_ms is not null and r.playbook = p_playbook and r.limit_key = p_key and r.finished_at is not null) cd on true
$$;
