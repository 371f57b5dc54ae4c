# The rules behind firebreak/authorize.
#
# Input: `user` ({ id, name, method, verified, groups }: who authenticated),
# `action` (below), `resource` (what it acts on; fields per action), `mode`
# ("local" when no authentication is configured, else "authenticated"), `now`.
# Shape as for decisions: allowed when at least one `permits` rule matches and
# no `denials` rule does (default deny). Group membership: lib.groups_of.
package firebreak.lib.authorize

import data.firebreak.lib
import rego.v1

user := input.user

action := input.action

resource := object.get(input, "resource", {})

actions := {
	"run.start", "run.abort", "run.retry", "run.cancel",
	"approval.answer",
	"token.create", "token.list", "token.revoke",
	"automation.pause", "automation.resume",
	"silence.create", "silence.expire",
}

valid_user if lib.valid_user(user)

actor := user.id if valid_user

else := "(nobody)"

known_action if action in actions

responders if lib.in_group(user, "oncall")

responders if lib.in_group(user, "sre")

sre if lib.in_group(user, "sre")

# The person behind the CLI on the database host (`firebreak token create`
# without FIREBREAK_TOKEN): whoever holds the database credentials.
operator if user.method == "operator"

person if lib.person_identity(user)

service if lib.service(user)

started_it if lib.same_person(actor, resource.started_by)

owns_token if lib.same_person(actor, concat(":", ["token", resource.user]))

# ---- denials (any one denies) -------------------------------------------------------

denials contains "no user given" if not valid_user

denials contains msg if {
	not known_action
	msg := concat("", ["unknown action ", json.marshal(object.get(input, "action", null))])
}

# Names typed into a local-mode console or passed with --as are claims; they
# count only where nothing better exists (loopback, no authentication set up).
denials contains msg if {
	valid_user
	lib.unverified(user)
	not lib.local_mode
	msg := concat("", [actor, " is not a verified identity; unverified identities may act only in local mode"])
}

denials contains "the service token (FIREBREAK_API_TOKEN) cannot answer approvals: a person must, with a personal token, the console or Slack" if {
	action == "approval.answer"
	service
}

# ---- permits (default deny: an allowed act matches one of these) ------------------------

permits contains "on-call and SRE may start runs" if {
	action == "run.start"
	responders
}

permits contains "automation (the service token) may start runs" if {
	action == "run.start"
	service
}

permits contains "anyone may start a dry run (it changes nothing)" if {
	action == "run.start"
	resource.dry_run == true
	valid_user
}

permits contains "on-call and SRE may abort runs" if {
	action == "run.abort"
	responders
}

permits contains "whoever started a run may abort it" if {
	action == "run.abort"
	started_it
}

permits contains "automation (the service token) may abort runs" if {
	action == "run.abort"
	service
}

permits contains "SRE may retry and cancel runs" if {
	action in {"run.retry", "run.cancel"}
	sre
}

# Who may approve this step is firebreak/approve's question, asked next.
permits contains "a person may answer approvals (firebreak/approve decides which)" if {
	action == "approval.answer"
	person
}

permits contains "SRE manage personal tokens" if {
	action in {"token.create", "token.list", "token.revoke"}
	sre
	user.verified == true
}

permits contains "the operator (database access) manages personal tokens" if {
	action in {"token.create", "token.list", "token.revoke"}
	operator
}

permits contains "anyone may revoke their own token" if {
	action == "token.revoke"
	owns_token
	user.verified == true
}

# Brakes are safe: anyone who authenticated may pull them.
permits contains "anyone authenticated may pause automation" if {
	action == "automation.pause"
	valid_user
}

permits contains "only SRE may resume automation" if {
	action == "automation.resume"
	sre
}

permits contains "on-call and SRE manage silences" if {
	action in {"silence.create", "silence.expire"}
	responders
}

# Local mode is one laptop with no authentication set up: whoever is at it
# runs the show (recorded as unverified local:<name>). Approvals still go to
# firebreak/approve, which wants an approver's name; tokens are never minted
# from a claimed name.
local_acts := {
	"run.start", "run.abort", "run.retry", "run.cancel",
	"automation.pause", "automation.resume",
	"silence.create", "silence.expire",
}

permits contains "local mode: no authentication is configured, so whoever is at this machine may (recorded unverified)" if {
	lib.local_mode
	user.method == "local"
	action in local_acts
}

# ---- the output fields --------------------------------------------------------------

default allow := false

allow if {
	count(permits) > 0
	count(denials) == 0
}

reasons := sort(denials) if {
	count(denials) > 0
} else := sort(permits) if {
	count(permits) > 0
} else := [concat("", ["no rule lets ", actor, " ", action_text, groups_text])]

action_text := action if is_string(action)

else := "(no action)"

groups_text := "" if {
	valid_user
	count(lib.groups_of(user)) == 0
} else := concat("", [" (groups: ", concat(", ", sort(lib.groups_of(user))), ")"]) if {
	valid_user
} else := ""
