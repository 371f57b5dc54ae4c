-- Repairs (`firebreak retry`, src/engine/repair.ts): a retried run asks its
-- approvals afresh. An approval belongs to the run's retry it was asked in
-- (runs.retries at the time, set by the insert itself); the engine reads only
-- the approvals of the run's current retry, so an answer given before a retry
-- (approved, rejected, expired) never decides a step after it, and the new
-- request starts again at round 1 without colliding with the old one.
alter table approvals add column retry integer not null default 0 check (retry >= 0);
alter table approvals drop constraint approvals_run_id_step_id_round_key;
alter table approvals add constraint approvals_run_id_step_id_retry_round_key unique (run_id, step_id, retry, round);
