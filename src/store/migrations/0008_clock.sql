-- One clock: every lease, timer and deadline is computed in SQL from fb_now(),
-- the database's transaction time plus an offset that is zero in production.
-- Tests move the database's time forward (firebreak_advance_clock) instead of
-- sleeping; nothing else ever writes the offset.
create table firebreak_clock (
  only_row        boolean  primary key default true check (only_row),
  offset_interval interval not null default interval '0'
);
insert into firebreak_clock default values;

-- plpgsql, not sql: a plpgsql function's query is planned once per session,
-- while a non-inlinable sql function is planned again in every statement that
-- calls it, and the hot statements call this several times per step.
create function fb_now() returns timestamptz
language plpgsql stable parallel safe as $$
begin
  return now() + coalesce((select offset_interval from firebreak_clock), interval '0');
end
$$;

-- The database's clock at this instant (fb_now() is the transaction's start,
-- earlier by whatever the transaction waited for): what the app reads to
-- follow the database's time, never what it decides by.
create function fb_clock() returns timestamptz
language plpgsql volatile parallel safe as $$
begin
  return clock_timestamp() + coalesce((select offset_interval from firebreak_clock), interval '0');
end
$$;

-- Move this database's clock forward (tests). Returns the new fb_now().
create function firebreak_advance_clock(by_interval interval) returns timestamptz
language sql volatile as $$
  update firebreak_clock set offset_interval = offset_interval + by_interval;
  select fb_now();
$$;

-- Column defaults follow the same clock.
alter table alert_notifications alter column received_at set default fb_now();
alter table alert_episodes alter column first_seen_at set default fb_now();
alter table alert_episodes alter column last_seen_at set default fb_now();
alter table runs alter column created_at set default fb_now();
alter table runs alter column run_at set default fb_now();
alter table step_attempts alter column started_at set default fb_now();
alter table approvals alter column requested_at set default fb_now();
alter table approval_votes alter column at set default fb_now();
