# The rules behind firebreak/approve (asked when someone answers an approval).
#
# Shape as for decisions: allowed when the user is an eligible approver and no
# `denials` rule matches (default deny).
package firebreak.lib.approve

import data.firebreak.lib
import rego.v1

approval := input.approval

user := input.user

valid_user if {
	is_string(user)
	user != ""
}

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

denials contains msg if {
	valid_user
	not eligible
	msg := concat("", [user, " is not an approver of this step (approvers: ", concat(", ", approval.approvers), ")"])
}

# Four-eyes: whoever started a run (manually) cannot approve its steps, under
# any of their actor names. Rejecting, i.e. stopping, stays allowed.
denials contains msg if {
	approval.decision == "approve"
	lib.same_person(user, approval.started_by)
	msg := concat("", [
		"four-eyes: run ", approval.run_id, " was started by ", approval.started_by,
		"; ", user, same_person_note(user, approval.started_by), " cannot approve its steps",
	])
}

# One person, one approval, whatever channel they click from.
denials contains msg if {
	approval.decision == "approve"
	some prior in approval.already_approved_by
	lib.same_person(user, prior)
	msg := concat("", [user, " already approved this step", as_note(user, prior)])
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
} else := concat("", [user, " may ", approval.decision, " as ", concat(", ", sort(via))]) if {
	allow
} else := "no rule allows this answer"
