-- Dry runs (POST /api/runs with "dryRun": true, `firebreak replay`): how the
-- run was asked to simulate. Null for real runs and for dry runs started
-- without options (the defaults apply: stub 200 {}, gather steps run for real).
--   { "noGather": bool, "stub": { "status", "headers", "body" },
--     "stubs": { "<step id>": { ...output fields } },
--     "requestedBy": "api:alice", "alertSource": "alertmanager",
--     "episodeId": 42, "playbooksFrom": "server" | "request" }
-- A replayed episode is named here, not in runs.episode_id: a dry run is not
-- one of the episode's runs (it must not take the episode's one run per
-- playbook, nor be aborted when the alert resolves).
alter table runs add column dry_run_options jsonb;
alter table runs add constraint runs_dry_run_options_only_dry check (dry_run_options is null or dry_run);
