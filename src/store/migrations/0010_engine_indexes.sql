-- Indexes that serve the queries the engine runs, and no others.
-- timeline_events is the hottest insert: every chain is read by (chain_id, seq), the unique key.
drop index timeline_events_kind_idx;
drop index timeline_events_run_idx;
-- Duplicated by the unique runs_episode_playbook_uq (episode_id, playbook).
drop index runs_episode_idx;
-- The policy's `history` filters and orders by cleared_at.
drop index run_steps_history_idx;
create index run_steps_history_idx on run_steps (action, target, cleared_at desc) where target is not null;
-- A waiting run's run_at is its approval deadline: the claim picks it up when the deadline passes.
drop index runs_runnable_idx;
create index runs_due_idx on runs (run_at) where status in ('queued', 'running', 'waiting');
-- Admission counts the runs holding or queued for a key, oldest first.
drop index runs_concurrency_idx;
create index runs_concurrency_idx on runs (concurrency_key, created_at, id) where concurrency_key is not null and status in ('queued', 'running', 'waiting');
-- Expiry happens in the claim now (run_at); the console lists pending approvals by request time.
drop index approvals_pending_idx;
create index approvals_pending_idx on approvals (requested_at) where status = 'pending';
