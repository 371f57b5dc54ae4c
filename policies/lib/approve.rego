# The rules behind firebreak/approve (asked when someone answers an approval,
# after firebreak/authorize allowed them to answer at all).
#
# Input: `approval` (the request), `user` ({ id, name, method, verified,
# groups }: who authenticated), `mode` ("local" or "authenticated"), `now`.
# Shape as for decisions: allowed when the user is an eligible approver and no
# `denials` rule matches (default deny).
package firebreak.lib.approve

import data.firebreak.lib
import rego.v1

approval := input.approval

user := input.user

valid_user if lib.valid_user(user)

actor := user.id if valid_user

else := "(nobody)"

# The approvers entries (`group:sre`, `slack:U123`) through which the user may answer.
via := lib.eligible_via(user, approval.approvers) if valid_user

eligible if count(via) > 0

denials contains "no answering user given" if not valid_user

# (A helper, not `not approval.decision in {...}`: with no decision at all
# that expression is undefined rather than false, and the `not` never fires.)
known_decision if approval.decision in {"approve", "reject"}

denials contains msg if {
	not known_decision
	msg := concat("", ["decision must be approve or reject, not ", json.marshal(object.get(object.get(input, "approval", {}), "decision", null))])
}

# Automation holds FIREBREAK_API_TOKEN; an approval needs a person.
denials contains "the service token (FIREBREAK_API_TOKEN) cannot answer approvals: a person must, with a personal token, the console or Slack" if {
	valid_user
	lib.service(user)
}

# A name typed into a local-mode console is a claim, not a proof.
denials contains msg if {
	valid_user
	lib.unverified(user)
	not lib.local_mode
	msg := concat("", [actor, " is not a verified identity; unverified identities may approve only in local mode"])
}

denials contains msg if {
	valid_user
	not lib.service(user)
	not eligible
	msg := concat("", [actor, " is not an approver of this step (approvers: ", concat(", ", approval.approvers), ")"])
}

# Four-eyes: whoever started a run (manually) cannot approve its steps, under
# any of their identities. Rejecting, i.e. stopping, stays allowed.
denials contains msg if {
	valid_user
	approval.decision == "approve"
	lib.same_person(actor, approval.started_by)
	msg := concat("", [
		"four-eyes: run ", approval.run_id, " was started by ", approval.started_by,
		"; ", actor, same_person_note(actor, approval.started_by), " cannot approve its steps",
	])
}

# One person, one approval, whatever channel they answer from.
denials contains msg if {
	valid_user
	approval.decision == "approve"
	some prior in approval.already_approved_by
	lib.same_person(actor, prior)
	msg := concat("", [actor, " already approved this step", as_note(actor, prior)])
}

same_person_note(a, b) := "" if a == b

else := " (the same person)"

as_note(a, b) := "" if a == b

else := concat("", [" (as ", b, ")"])

default allow := false

allow if {
	eligible
	count(denials) == 0
}

reason := concat("; ", sort(denials)) if {
	count(denials) > 0
} else := concat("", [actor, " may ", approval.decision, " as ", concat(", ", sort(via))]) if {
	allow
} else := "no rule allows this answer"
