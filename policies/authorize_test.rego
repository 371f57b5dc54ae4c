package firebreak.authorize_test

import data.firebreak.authorize
import rego.v1

slack(id) := {"id": concat(":", ["slack", id]), "name": id, "method": "slack", "verified": true, "groups": []}

token(name, groups) := {"id": concat(":", ["token", name]), "name": name, "method": "token", "verified": true, "groups": groups}

oidc(name, groups) := {"id": concat(":", ["oidc", name]), "name": name, "method": "oidc", "verified": true, "groups": groups}

local(name) := {"id": concat(":", ["local", name]), "name": name, "method": "local", "verified": false, "groups": []}

operator := {"id": "operator:root", "name": "root", "method": "operator", "verified": true, "groups": []}

service := {"id": "service", "name": "service", "method": "service", "verified": true, "groups": []}

ask(user, action, resource) := {"user": user, "action": action, "resource": resource, "mode": "authenticated", "now": "2027-11-01T10:00:00Z"}

ask_local(user, action, resource) := object.union(ask(user, action, resource), {"mode": "local"})

run_resource := {"run_id": "r1", "playbook": "high-error-rate", "started_by": "token:erin", "status": "waiting"}

allowed(inp) if authorize.allow with input as inp

test_output_has_exactly_the_two_fields if {
	object.keys(authorize) == {"allow", "reasons"} with input as ask(token("alice", []), "run.start", {"playbook": "p"})
}

# ---- run.start ------------------------------------------------------------------

test_sre_and_oncall_start_runs if {
	authorize == {"allow": true, "reasons": ["on-call and SRE may start runs"]} with input as ask(token("alice", []), "run.start", {"playbook": "p", "dry_run": false})
	allowed(ask(slack("U0ONC1"), "run.start", {"playbook": "p"}))
	allowed(ask(oidc("erin", ["oncall"]), "run.start", {"playbook": "p"}))
}

test_others_may_not_start_runs if {
	authorize == {"allow": false, "reasons": ["no rule lets token:erin run.start"]} with input as ask(token("erin", []), "run.start", {"playbook": "p"})
	authorize == {"allow": false, "reasons": ["no rule lets oidc:erin run.start (groups: viewers)"]} with input as ask(oidc("erin", ["viewers"]), "run.start", {"playbook": "p"})
}

test_automation_starts_runs if {
	allowed(ask(service, "run.start", {"playbook": "p"}))
}

test_anyone_may_start_a_dry_run if {
	allowed(ask(token("erin", []), "run.start", {"playbook": "p", "dry_run": true}))
	not allowed(ask(token("erin", []), "run.start", {"playbook": "p", "dry_run": "true"}))
}

# ---- run.abort, retry, cancel -------------------------------------------------------

test_responders_abort_runs if {
	allowed(ask(slack("U0ONC1"), "run.abort", run_resource))
	allowed(ask(oidc("bob", []), "run.abort", run_resource))
}

test_the_starter_aborts_their_run_on_any_channel if {
	authorize == {"allow": true, "reasons": ["whoever started a run may abort it"]} with input as ask(oidc("erin", []), "run.abort", run_resource)
}

test_names_are_people_whatever_their_case if {
	# data.groups lists alice in sre; the groups follow her name in any case.
	allowed(ask(token("ALICE", []), "token.create", {"user": "x", "groups": [], "ttl_seconds": null}))
	allowed(ask(oidc("Erin", []), "run.abort", run_resource))
	allowed(ask(oidc("ERIN", []), "token.revoke", {"token_id": "t1", "user": "erin"}))
}

test_others_may_not_abort if {
	not allowed(ask(slack("UNOBODY1"), "run.abort", run_resource))
	not allowed(ask(token("frank", []), "run.abort", object.union(run_resource, {"started_by": null})))
}

test_automation_aborts_runs if {
	allowed(ask(service, "run.abort", run_resource))
}

test_only_sre_retry_and_cancel if {
	allowed(ask(token("alice", []), "run.retry", run_resource))
	allowed(ask(token("alice", []), "run.cancel", run_resource))
	not allowed(ask(token("carol", []), "run.retry", run_resource))
	not allowed(ask(service, "run.cancel", run_resource))
}

# ---- approval.answer ----------------------------------------------------------------------

test_people_may_answer_approvals if {
	allowed(ask(token("erin", []), "approval.answer", {"approval_id": "a1", "run_id": "r1"}))
	allowed(ask(slack("UNOBODY1"), "approval.answer", {"approval_id": "a1", "run_id": "r1"}))
}

test_the_service_token_may_not_answer_approvals if {
	authorize == {
		"allow": false,
		"reasons": ["the service token (FIREBREAK_API_TOKEN) cannot answer approvals: a person must, with a personal token, the console or Slack"],
	} with input as ask(service, "approval.answer", {"approval_id": "a1"})
	not allowed(ask(object.union(service, {"groups": ["sre"]}), "approval.answer", {"approval_id": "a1"}))
}

# ---- unverified identities ------------------------------------------------------------------

test_unverified_identities_act_in_local_mode if {
	allowed(ask_local(local("alice"), "approval.answer", {"approval_id": "a1"}))
	allowed(ask_local(local("alice"), "run.start", {"playbook": "p"}))
	allowed(ask_local(local("carol"), "run.abort", run_resource))
}

test_unverified_identities_do_nothing_outside_local_mode if {
	authorize == {
		"allow": false,
		"reasons": ["local:alice is not a verified identity; unverified identities may act only in local mode"],
	} with input as ask(local("alice"), "approval.answer", {"approval_id": "a1"})
	not allowed(ask(local("alice"), "run.start", {"playbook": "p"}))
	not allowed(ask(local("alice"), "automation.pause", {}))
	not allowed(ask(object.union(token("alice", []), {"verified": "yes"}), "run.start", {"playbook": "p"}))
}

test_local_mode_lets_whoever_is_at_the_machine_run_things if {
	authorize == {
		"allow": true,
		"reasons": ["local mode: no authentication is configured, so whoever is at this machine may (recorded unverified)"],
	} with input as ask_local(local("anonymous"), "run.start", {"playbook": "p"})
	every action in ["run.abort", "run.retry", "run.cancel", "automation.pause", "automation.resume", "silence.create", "silence.expire"] {
		allowed(ask_local(local("erin"), action, run_resource))
	}
}

test_local_mode_never_mints_tokens_from_a_claimed_name if {
	every action in ["token.create", "token.list", "token.revoke"] {
		not allowed(ask_local(local("alice"), action, {"user": "alice"}))
	}
}

test_local_mode_does_not_widen_other_identities if {
	not allowed(ask_local(token("erin", []), "run.start", {"playbook": "p"}))
	not allowed(ask_local(service, "automation.resume", {}))
}

# ---- tokens -----------------------------------------------------------------------------

test_sre_and_the_operator_manage_tokens if {
	every action in ["token.create", "token.list", "token.revoke"] {
		allowed(ask(oidc("alice", []), action, {"user": "erin"}))
		allowed(ask(operator, action, {"user": "erin"}))
		not allowed(ask(token("carol", []), action, {"user": "erin"}))
		not allowed(ask(service, action, {"user": "erin"}))
	}
}

test_an_unverified_sre_name_may_not_mint_tokens if {
	not allowed(ask_local(local("alice"), "token.create", {"user": "mallory", "groups": ["sre"]}))
}

test_anyone_may_revoke_their_own_token if {
	authorize == {"allow": true, "reasons": ["anyone may revoke their own token"]} with input as ask(token("erin", []), "token.revoke", {"token_id": "t1", "user": "erin"})
	allowed(ask(oidc("erin", []), "token.revoke", {"token_id": "t1", "user": "erin"}))
	not allowed(ask(token("erin", []), "token.revoke", {"token_id": "t2", "user": "frank"}))
}

# ---- automation and silences (acts of the next release) ----------------------------------------

test_anyone_authenticated_may_pause if {
	allowed(ask(token("erin", []), "automation.pause", {"playbook": "p"}))
	allowed(ask(slack("UNOBODY1"), "automation.pause", {}))
	allowed(ask(service, "automation.pause", {}))
}

test_only_sre_resume if {
	allowed(ask(slack("U0SRE1"), "automation.resume", {}))
	not allowed(ask(slack("U0ONC1"), "automation.resume", {}))
	not allowed(ask(service, "automation.resume", {}))
}

test_responders_manage_silences if {
	allowed(ask(token("dave", []), "silence.create", {"matchers": ["service=\"checkout\""]}))
	allowed(ask(token("bob", []), "silence.expire", {"silence_id": "s1"}))
	not allowed(ask(token("erin", []), "silence.create", {}))
}

# ---- fail closed ------------------------------------------------------------------------------

test_unknown_actions_are_denied if {
	authorize == {"allow": false, "reasons": [`unknown action "run.delete"`]} with input as ask(token("alice", []), "run.delete", {})
	not allowed(object.remove(ask(token("alice", []), "run.start", {}), ["action"]))
}

test_missing_or_malformed_users_are_denied if {
	authorize == {"allow": false, "reasons": ["no user given"]} with input as object.remove(ask(token("alice", []), "automation.pause", {}), ["user"])
	not allowed(ask("token:alice", "automation.pause", {}))
	not allowed(ask({"id": "", "method": "token", "verified": true}, "automation.pause", {}))
}

test_empty_input_is_denied if {
	not authorize.allow with input as {}
}
