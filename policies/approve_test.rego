package firebreak.approve_test

import data.firebreak.approve
import rego.v1

request := {
	"approval": {
		"id": "ap1", "run_id": "r1", "step_id": "rollback",
		"approvers": ["group:sre"], "min_approvals": 1,
		"started_by": null, "playbook": "high-error-rate", "action": "http.request", "impact": "high",
		"decision": "approve", "already_approved_by": [],
	},
	"user": "slack:U0SRE1",
	"now": "2027-11-01T10:00:00Z",
}

answer(user, patch) := object.union(request, {"user": user, "approval": object.union(request.approval, patch)})

test_output_has_exactly_the_two_fields if {
	object.keys(approve) == {"allow", "reason"} with input as request
}

test_sre_member_may_approve if {
	approve == {"allow": true, "reason": "slack:U0SRE1 may approve as group:sre"} with input as request
}

test_sre_member_may_approve_from_any_listed_channel if {
	approve.allow with input as answer("console:bob", {})
}

test_non_member_may_not_approve if {
	approve == {
		"allow": false,
		"reason": "slack:U0ONC1 is not an approver of this step (approvers: group:sre)",
	} with input as answer("slack:U0ONC1", {})
}

test_non_member_may_not_reject if {
	not approve.allow with input as answer("slack:U0ONC1", {"decision": "reject"})
}

test_oncall_may_approve_when_listed if {
	approve.allow with input as answer("slack:U0ONC1", {"approvers": ["group:oncall", "group:sre"]})
}

test_users_can_be_named_directly if {
	approve == {"allow": true, "reason": "slack:UOUTSIDER may approve as slack:UOUTSIDER"} with input as answer("slack:UOUTSIDER", {"approvers": ["group:sre", "slack:UOUTSIDER"]})
}

test_unknown_group_names_nobody if {
	not approve.allow with input as answer("slack:U0SRE1", {"approvers": ["group:nope"]})
}

test_no_approvers_means_nobody if {
	not approve.allow with input as answer("slack:U0SRE1", {"approvers": []})
}

test_four_eyes_starter_may_not_approve if {
	approve == {
		"allow": false,
		"reason": "four-eyes: run r1 was started by slack:U0SRE1; slack:U0SRE1 cannot approve its steps",
	} with input as answer("slack:U0SRE1", {"started_by": "slack:U0SRE1"})
}

test_four_eyes_covers_the_same_person_on_another_channel if {
	approve == {
		"allow": false,
		"reason": "four-eyes: run r1 was started by console:alice; slack:U0SRE1 (the same person) cannot approve its steps",
	} with input as answer("slack:U0SRE1", {"started_by": "console:alice"})
}

test_four_eyes_starter_may_still_reject if {
	approve.allow with input as answer("slack:U0SRE1", {"started_by": "console:alice", "decision": "reject"})
}

test_another_sre_may_approve_a_run_someone_started if {
	approve.allow with input as answer("slack:U0SRE2", {"started_by": "console:alice"})
}

test_may_not_approve_twice if {
	approve == {"allow": false, "reason": "slack:U0SRE1 already approved this step"} with input as answer("slack:U0SRE1", {"min_approvals": 2, "already_approved_by": ["slack:U0SRE1"]})
}

test_may_not_approve_twice_from_another_channel if {
	approve == {
		"allow": false,
		"reason": "slack:U0SRE1 already approved this step (as console:alice)",
	} with input as answer("slack:U0SRE1", {"min_approvals": 2, "already_approved_by": ["console:alice"]})
}

test_second_person_may_add_the_second_approval if {
	approve.allow with input as answer("slack:U0SRE2", {"min_approvals": 2, "already_approved_by": ["console:alice"]})
}

test_missing_user_is_denied if {
	approve == {"allow": false, "reason": "no answering user given"} with input as object.remove(request, ["user"])
}

test_unknown_decision_is_denied if {
	approve == {"allow": false, "reason": `decision must be approve or reject, not "maybe"`} with input as answer("slack:U0SRE1", {"decision": "maybe"})
}

test_missing_decision_is_denied if {
	approve == {"allow": false, "reason": "decision must be approve or reject, not null"} with input as json.remove(request, ["approval/decision"])
}

test_empty_input_is_denied if {
	not approve.allow with input as {}
}
