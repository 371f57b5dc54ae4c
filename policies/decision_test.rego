package firebreak.decision_test

import data.firebreak.decision
import rego.v1

# ---- fixtures -------------------------------------------------------------------

now := "2027-11-01T10:00:00Z"

in_freeze := "2027-12-23T10:00:00Z"

base := {
	"playbook": {"name": "high-error-rate"},
	"step": {"id": "error_rate", "action": "prometheus.query", "impact": "low", "approval": "policy", "params": {}, "target": "prometheus"},
	"alert": {"severity": "warning", "labels": {"service": "api"}},
	"run": {"id": "r1", "trigger": "alert", "started_by": null, "dry_run": false},
	"history": [],
	"now": now,
}

with_step(patch) := object.union(base, {"step": object.union(base.step, patch)})

rollback := with_step({"id": "rollback", "action": "http.request", "impact": "high", "target": "deploy.internal"})

critical(inp) := object.union(inp, {"alert": {"severity": "critical"}})

at(inp, t) := object.union(inp, {"now": t})

ran(minutes_ago, status) := {
	"run_id": "old", "playbook": "high-error-rate", "step_id": "rollback",
	"action": "http.request", "target": "deploy.internal", "status": status,
	"at": time.format(time.parse_rfc3339_ns(now) - (minutes_ago * 60000000000)),
}

no_approval := {"allow": true, "require_approval": false, "approvers": [], "min_approvals": 0}

denied := {"allow": false, "require_approval": false, "approvers": [], "min_approvals": 0}

fields(d) := object.remove(d, ["reasons"])

# ---- the output object --------------------------------------------------------------

test_output_has_exactly_the_five_fields if {
	d := decision with input as base
	object.keys(d) == {"allow", "require_approval", "approvers", "min_approvals", "reasons"}
}

# ---- impact and approval modes ---------------------------------------------------------

test_low_impact_gather_step_runs_without_approval if {
	decision == object.union(no_approval, {"reasons": ["low-impact step: runs without approval"]}) with input as base
}

test_high_impact_step_needs_one_sre_approval if {
	decision == {
		"allow": true, "require_approval": true, "approvers": ["group:sre"], "min_approvals": 1,
		"reasons": ["high-impact step: needs 1 approval(s) from group:sre"],
	} with input as rollback
}

test_approval_required_forces_approval_of_a_low_impact_step if {
	d := decision with input as with_step({"approval": "required"})
	fields(d) == {"allow": true, "require_approval": true, "approvers": ["group:oncall", "group:sre"], "min_approvals": 1}
}

test_approval_never_skips_approval_of_a_high_impact_step if {
	d := decision with input as with_step({"action": "http.request", "impact": "high", "approval": "never"})
	fields(d) == no_approval
	d.reasons == ["high-impact step with approval: never: runs without approval"]
}

test_approval_never_is_still_subject_to_deny if {
	d := decision with input as with_step({"action": "exec", "approval": "never", "params": {"script": "rm-rf.sh"}})
	fields(d) == denied
	d.reasons == ["exec: script rm-rf.sh is not in the allow-list (data.exec.allowed_scripts)"]
}

test_manual_run_notes_four_eyes if {
	inp := object.union(rollback, {"run": {"trigger": "manual", "started_by": "console:alice"}})
	d := decision with input as inp
	d.require_approval
	"four-eyes: console:alice started this run and cannot approve it" in d.reasons
}

test_unknown_impact_is_denied_by_default if {
	d := decision with input as with_step({"impact": "medium"})
	fields(d) == denied
	d.reasons == [`no rule allows step "error_rate" (action "prometheus.query", impact "medium")`]
}

test_unknown_approval_mode_is_denied if {
	d := decision with input as with_step({"approval": "sometimes"})
	not d.allow
	d.reasons == [`step approval must be policy, required or never, not "sometimes"`]
}

test_missing_step_is_denied if {
	d := decision with input as object.remove(base, ["step"])
	not d.allow
}

# ---- change freeze -----------------------------------------------------------------------

test_freeze_denies_high_impact_steps if {
	d := decision with input as at(rollback, in_freeze)
	fields(d) == denied
	d.reasons == ["change freeze year-end-2027 is in effect: high-impact steps are denied unless the alert severity is critical"]
}

test_freeze_with_critical_alert_needs_two_approvals if {
	d := decision with input as critical(at(rollback, in_freeze))
	fields(d) == {"allow": true, "require_approval": true, "approvers": ["group:sre"], "min_approvals": 2}
	d.reasons == ["change freeze year-end-2027 is in effect and the alert is critical: needs 2 approval(s) from group:sre"]
}

test_freeze_with_critical_alert_denies_approval_never if {
	d := decision with input as critical(at(with_step({"action": "http.request", "impact": "high", "approval": "never"}), in_freeze))
	not d.allow
	d.reasons == ["change freeze year-end-2027 is in effect: a high-impact step needs approval, but the step says approval: never"]
}

test_freeze_leaves_low_impact_steps_alone if {
	d := decision with input as at(base, in_freeze)
	fields(d) == no_approval
}

test_freeze_starts_at_start_and_ends_before_end if {
	not decision.allow with input as at(rollback, "2027-12-17T00:00:00Z")
	decision.allow with input as at(rollback, "2027-12-16T23:59:59.999Z")
	decision.allow with input as at(rollback, "2028-01-04T09:00:00Z")
}

test_freeze_compares_times_not_strings if {
	# 23:30 at UTC-01:00 is 00:30 UTC on the 17th: inside the freeze.
	not decision.allow with input as at(rollback, "2027-12-16T23:30:00-01:00")
}

test_malformed_freeze_window_denies_high_impact_steps if {
	d := decision with input as rollback with data.change_freeze.windows as [{"name": "typo", "start": "2027-12-17", "end": "2028-01-04T09:00:00Z"}]
	not d.allow
	startswith(d.reasons[0], "change freeze window ")
}

test_now_that_does_not_parse_is_denied if {
	d := decision with input as at(base, "yesterday")
	not d.allow
	d.reasons == ["input.now is not an RFC 3339 time: cannot check change freezes or the blast radius"]
}

# ---- blast radius ----------------------------------------------------------------------------

test_blast_radius_allows_up_to_the_limit if {
	inp := object.union(rollback, {"history": [ran(5, "succeeded"), ran(20, "failed")]})
	decision.allow with input as inp
}

test_blast_radius_denies_past_the_limit if {
	inp := object.union(rollback, {"history": [ran(5, "succeeded"), ran(20, "failed"), ran(59, "compensated")]})
	d := decision with input as inp
	fields(d) == denied
	d.reasons == ["blast radius: http.request on deploy.internal already ran 3 time(s) in the last 60 min (limit 3)"]
}

test_blast_radius_counts_only_the_last_hour if {
	inp := object.union(rollback, {"history": [ran(5, "succeeded"), ran(20, "succeeded"), ran(61, "succeeded")]})
	decision.allow with input as inp
}

test_blast_radius_ignores_steps_that_did_not_run if {
	inp := object.union(rollback, {"history": [ran(5, "succeeded"), ran(6, "denied"), ran(7, "skipped"), ran(8, "pending")]})
	decision.allow with input as inp
}

test_blast_radius_counts_same_action_and_target_only if {
	other_target := object.union(ran(5, "succeeded"), {"target": "deploy.other"})
	other_action := object.union(ran(5, "succeeded"), {"action": "exec"})
	inp := object.union(rollback, {"history": [ran(5, "succeeded"), ran(6, "succeeded"), other_target, other_action]})
	decision.allow with input as inp
}

test_blast_radius_counts_history_with_unreadable_times if {
	inp := object.union(rollback, {"history": [ran(5, "succeeded"), ran(6, "succeeded"), object.union(ran(0, "succeeded"), {"at": "soon"})]})
	not decision.allow with input as inp
}

test_blast_radius_has_per_action_limits if {
	restart := with_step({"action": "exec", "impact": "high", "params": {"script": "cleanup-disk.sh"}, "target": "cleanup-disk.sh"})
	h := [object.union(ran(m, "succeeded"), {"action": "exec", "target": "cleanup-disk.sh"}) | some m in [5, 10]]
	d := decision with input as object.union(restart, {"history": h})
	d.reasons == ["blast radius: exec on cleanup-disk.sh already ran 2 time(s) in the last 60 min (limit 2)"]
}

test_blast_radius_ignores_low_impact_history if {
	reads := [object.union(ran(m, "succeeded"), {"impact": "low"}) | some m in [1, 2, 3, 4]]
	decision.allow with input as object.union(rollback, {"history": reads})
}

test_blast_radius_counts_high_impact_history if {
	changes := [object.union(ran(m, "succeeded"), {"impact": "high"}) | some m in [1, 2, 3]]
	not decision.allow with input as object.union(rollback, {"history": changes})
}

test_blast_radius_does_not_limit_low_impact_steps if {
	h := [object.union(ran(m, "succeeded"), {"action": "prometheus.query", "target": "prometheus"}) | some m in [1, 2, 3, 4, 5]]
	decision.allow with input as object.union(base, {"history": h})
}

# ---- exec ------------------------------------------------------------------------------------

test_exec_of_an_allowed_script if {
	d := decision with input as with_step({"action": "exec", "params": {"script": "cleanup-disk.sh", "args": ["api"]}})
	fields(d) == no_approval
}

test_exec_of_an_unlisted_script_is_denied if {
	d := decision with input as with_step({"action": "exec", "impact": "high", "params": {"script": "../../bin/sh"}})
	d.reasons == ["exec: script ../../bin/sh is not in the allow-list (data.exec.allowed_scripts)"]
}

test_exec_without_a_script_is_denied if {
	d := decision with input as with_step({"action": "exec", "params": {"args": ["x"]}})
	d.reasons == ["exec step names no script (params.script)"]
}

test_blast_radius_counts_history_without_time_or_status if {
	no_at := object.remove(ran(5, "succeeded"), ["at"])
	no_status := object.remove(ran(5, "succeeded"), ["status"])
	not decision.allow with input as object.union(rollback, {"history": [ran(1, "succeeded"), no_at, no_status]})
}

test_missing_now_is_denied if {
	d := decision with input as object.remove(base, ["now"])
	not d.allow
}

test_exec_allow_list_missing_from_data_denies_exec if {
	d := decision with input as with_step({"action": "exec", "params": {"script": "cleanup-disk.sh"}}) with data.exec as {}
	not d.allow
}
