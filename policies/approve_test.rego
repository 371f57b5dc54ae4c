package firebreak.approve_test

import data.firebreak.approve
import rego.v1

slack(id) := {"id": concat(":", ["slack", id]), "name": id, "method": "slack", "verified": true, "groups": []}

token(name, groups) := {"id": concat(":", ["token", name]), "name": name, "method": "token", "verified": true, "groups": groups}

oidc(name, groups) := {"id": concat(":", ["oidc", name]), "name": name, "method": "oidc", "verified": true, "groups": groups}

local(name) := {"id": concat(":", ["local", name]), "name": name, "method": "local", "verified": false, "groups": []}

service := {"id": "service", "name": "service", "method": "service", "verified": true, "groups": []}

request := {
	"approval": {
		"id": "ap1", "run_id": "r1", "step_id": "rollback",
		"approvers": ["group:sre"], "min_approvals": 1,
		"started_by": null, "playbook": "high-error-rate", "action": "http.request", "impact": "high",
		"decision": "approve", "already_approved_by": [],
	},
	"user": slack("U0SRE1"),
	"mode": "authenticated",
	"now": "2027-11-01T10:00:00Z",
}

answer(user, patch) := object.union(request, {"user": user, "approval": object.union(request.approval, patch)})

local_answer(user, patch) := object.union(answer(user, patch), {"mode": "local"})

test_output_has_exactly_the_two_fields if {
	object.keys(approve) == {"allow", "reason"} with input as request
}

test_sre_member_may_approve if {
	approve == {"allow": true, "reason": "slack:U0SRE1 may approve as group:sre"} with input as request
}

test_sre_member_may_approve_from_any_channel if {
	approve.allow with input as answer(oidc("bob", []), {})
	approve.allow with input as answer(token("bob", []), {})
}

test_groups_carried_by_the_credential_count if {
	approve == {"allow": true, "reason": "oidc:erin may approve as group:sre"} with input as answer(oidc("erin", ["sre"]), {})
	approve.allow with input as answer(token("erin", ["sre"]), {})
	not approve.allow with input as answer(token("erin", ["oncall"]), {})
}

test_non_member_may_not_approve if {
	approve == {
		"allow": false,
		"reason": "slack:U0ONC1 is not an approver of this step (approvers: group:sre)",
	} with input as answer(slack("U0ONC1"), {})
}

test_non_member_may_not_reject if {
	not approve.allow with input as answer(slack("U0ONC1"), {"decision": "reject"})
}

test_oncall_may_approve_when_listed if {
	approve.allow with input as answer(slack("U0ONC1"), {"approvers": ["group:oncall", "group:sre"]})
}

test_users_can_be_named_directly if {
	approve == {"allow": true, "reason": "slack:UOUTSIDER may approve as slack:UOUTSIDER"} with input as answer(slack("UOUTSIDER"), {"approvers": ["group:sre", "slack:UOUTSIDER"]})
}

test_a_direct_entry_names_the_person_on_every_channel if {
	approve.allow with input as answer(token("alice", []), {"approvers": ["slack:U0SRE1"]})
}

test_unknown_group_names_nobody if {
	not approve.allow with input as answer(slack("U0SRE1"), {"approvers": ["group:nope"]})
}

test_no_approvers_means_nobody if {
	not approve.allow with input as answer(slack("U0SRE1"), {"approvers": []})
}

test_the_service_token_never_answers if {
	approve == {
		"allow": false,
		"reason": "the service token (FIREBREAK_API_TOKEN) cannot answer approvals: a person must, with a personal token, the console or Slack",
	} with input as answer(service, {"approvers": ["group:sre", "service"]})
	not approve.allow with input as answer(object.union(service, {"groups": ["sre"]}), {})
}

test_unverified_identities_approve_only_in_local_mode if {
	approve.allow with input as local_answer(local("alice"), {})
	approve == {
		"allow": false,
		"reason": "local:alice is not a verified identity; unverified identities may approve only in local mode",
	} with input as answer(local("alice"), {})
}

test_local_names_still_need_to_be_approvers if {
	not approve.allow with input as local_answer(local("carol"), {})
}

test_four_eyes_starter_may_not_approve if {
	approve == {
		"allow": false,
		"reason": "four-eyes: run r1 was started by slack:U0SRE1; slack:U0SRE1 cannot approve its steps",
	} with input as answer(slack("U0SRE1"), {"started_by": "slack:U0SRE1"})
}

test_four_eyes_covers_the_same_person_on_another_channel if {
	approve == {
		"allow": false,
		"reason": "four-eyes: run r1 was started by token:alice; slack:U0SRE1 (the same person) cannot approve its steps",
	} with input as answer(slack("U0SRE1"), {"started_by": "token:alice"})
	not approve.allow with input as answer(oidc("alice", []), {"started_by": "token:alice"})
}

test_four_eyes_covers_an_unlisted_name_on_two_channels if {
	not approve.allow with input as answer(oidc("erin", ["sre"]), {"started_by": "token:erin"})
}

# One human, two spellings of their name (a provider that capitalises it, an
# address typed in another case): still one person.
test_four_eyes_ignores_the_case_of_a_name if {
	not approve.allow with input as answer(oidc("Erin", ["sre"]), {"started_by": "token:erin"})
	not approve.allow with input as answer(oidc("Alice", []), {"started_by": "token:alice"})
	not approve.allow with input as answer(token("ERIN@example.com", ["sre"]), {"started_by": "oidc:erin@Example.com"})
}

test_four_eyes_starter_may_still_reject if {
	approve.allow with input as answer(slack("U0SRE1"), {"started_by": "oidc:alice", "decision": "reject"})
}

test_another_sre_may_approve_a_run_someone_started if {
	approve.allow with input as answer(slack("U0SRE2"), {"started_by": "oidc:alice"})
}

test_may_not_approve_twice if {
	approve == {"allow": false, "reason": "slack:U0SRE1 already approved this step"} with input as answer(slack("U0SRE1"), {"min_approvals": 2, "already_approved_by": ["slack:U0SRE1"]})
}

test_may_not_approve_twice_from_another_channel if {
	approve == {
		"allow": false,
		"reason": "slack:U0SRE1 already approved this step (as token:alice)",
	} with input as answer(slack("U0SRE1"), {"min_approvals": 2, "already_approved_by": ["token:alice"]})
}

test_may_not_approve_twice_in_another_case if {
	approve == {
		"allow": false,
		"reason": "oidc:Erin already approved this step (as token:erin)",
	} with input as answer(oidc("Erin", ["sre"]), {"min_approvals": 2, "already_approved_by": ["token:erin"]})
}

test_groups_of_data_json_follow_a_name_in_any_case if {
	approve.allow with input as answer(oidc("Bob", []), {})
	approve.allow with input as answer(token("ALICE", []), {"started_by": "token:bob"})
}

test_second_person_may_add_the_second_approval if {
	approve.allow with input as answer(slack("U0SRE2"), {"min_approvals": 2, "already_approved_by": ["oidc:alice"]})
}

test_missing_user_is_denied if {
	approve == {"allow": false, "reason": "no answering user given"} with input as object.remove(request, ["user"])
}

test_a_user_given_as_a_bare_string_is_denied if {
	approve == {"allow": false, "reason": "no answering user given"} with input as object.union(request, {"user": "slack:U0SRE1"})
}

test_unknown_decision_is_denied if {
	approve == {"allow": false, "reason": `decision must be approve or reject, not "maybe"`} with input as answer(slack("U0SRE1"), {"decision": "maybe"})
}

test_missing_decision_is_denied if {
	approve == {"allow": false, "reason": "decision must be approve or reject, not null"} with input as json.remove(request, ["approval/decision"])
}

test_empty_input_is_denied if {
	not approve.allow with input as {}
}
