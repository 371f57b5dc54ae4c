-- The fence at the head of every batch a worker sends for a run it leases
-- (src/engine/run-tx.ts): in one call, before anything else in the batch runs,
--   1. the run's timeline chain lock (the same lock every writer of the run takes first),
--   2. the concurrency key's lock, when the batch admits, finishes or wakes by key
--      (always after the chain lock and before any row lock: one order, no deadlocks),
--   3. the run row, locked until commit, still leased by this worker (fencing: a
--      claim cannot land between this check and the commit),
--   4. the chain head the worker hashed its events onto is still the head: nobody
--      (an abort, an answer, a resolve) wrote to the run since the worker last read it.
-- A failed check raises, so the whole batch rolls back: FBL01 = lease lost,
-- FBH01 = the run changed (reload and decide again). Returns the database's
-- clock as the checks end (fb_clock), for the app's reading of it.
create function fb_run_guard(p_run uuid, p_worker text, p_seq integer, p_key text) returns timestamptz
language plpgsql volatile as $$
begin
  perform pg_advisory_xact_lock(7270, hashtext(p_run::text));
  if p_key is not null then
    perform pg_advisory_xact_lock(7271, hashtext(p_key));
  end if;
  perform 1 from runs where id = p_run and lease_owner = p_worker for update;
  if not found then
    raise exception 'run % is not leased by %', p_run, p_worker using errcode = 'FBL01';
  end if;
  if coalesce((select max(seq) from timeline_events where chain_id = p_run::text), 0) <> p_seq then
    raise exception 'run % changed: its timeline is past event %', p_run, p_seq using errcode = 'FBH01';
  end if;
  return fb_clock();
end
$$;

-- How a run that is stopping will end. A run decides to stop (a failed step,
-- a deny, a rejected or expired approval, a person's abort) before it
-- compensates; the decision is recorded first (abort_requested_*, ending), so
-- a worker that takes over mid-compensation carries on with the same end
-- instead of mistaking the run for one with no steps left.
alter table runs add column ending text check (ending in ('failed', 'aborted', 'cancelled'));
