# The rules behind firebreak/decision (asked before every step).
#
# Shape: a step is allowed when at least one `permits` rule matches and no
# `denials` rule does (default deny). Approval needs are derived separately,
# from data.approval.
package firebreak.lib.decision

import data.firebreak.lib
import rego.v1

step := input.step

high_impact if step.impact == "high"

low_impact if step.impact == "low"

approval_modes := {"policy", "required", "never"}

# What the step acts on (host, script, ...); "" when the engine gave none.
target := object.get(step, "target", "")

# ---- change freeze -----------------------------------------------------------

active_freezes contains w if {
	some w in data.change_freeze.windows
	lib.now_ns >= lib.time_ns(w.start)
	lib.now_ns < lib.time_ns(w.end)
}

in_freeze if count(active_freezes) > 0

freeze_name := concat(", ", sort([w.name | some w in active_freezes]))

critical_alert if input.alert.severity in data.change_freeze.override_severities

# A critical incident during a freeze may still change things, with more eyes.
freeze_override if {
	high_impact
	in_freeze
	critical_alert
}

# ---- blast radius --------------------------------------------------------------

window_seconds := data.blast_radius.window_seconds

limit := object.get(data.blast_radius.limits, step.action, data.blast_radius.default_limit)

# Step statuses that never touched the target; everything else counts
# (succeeded, failed, running, compensated, and any status we do not know).
not_executed := {"pending", "skipped", "denied", "cancelled"}

skipped(h) if h.status in not_executed

recent(h) if lib.now_ns - lib.time_ns(h.at) < window_seconds * 1000000000

# An entry whose time does not parse counts as recent: the safe side.
recent(h) if not lib.time_ns(object.get(h, "at", null))

# Only high-impact executions count: reading the same host (a GET of the
# deploy history) is not a change. An entry without `impact` counts (safe side).
low_impact_entry(h) if h.impact == "low"

recent_count := count([h |
	some h in input.history
	h.action == step.action
	h.target == target
	not skipped(h)
	not low_impact_entry(h)
	recent(h)
])

# ---- exec ------------------------------------------------------------------------

exec_script := step.params.script

# Helpers rather than `not is_string(x)` / `not x in set` on a possibly
# undefined reference: such an expression is undefined, not false, so the
# `not` would never fire and a malformed step would slip through.
has_exec_script if is_string(exec_script)

known_approval_mode if step.approval in approval_modes

allowed_script if exec_script in data.exec.allowed_scripts

# ---- denials -----------------------------------------------------------------------

# A typo in a freeze window must not silently lift the freeze.
denials contains msg if {
	high_impact
	some w in data.change_freeze.windows
	not valid_window(w)
	msg := concat("", ["change freeze window ", json.marshal(w), " in data.json has no valid RFC 3339 start and end"])
}

valid_window(w) if {
	lib.time_ns(w.start) < lib.time_ns(w.end)
}

denials contains "input.now is not an RFC 3339 time: cannot check change freezes or the blast radius" if {
	not lib.now_ns
}

denials contains msg if {
	high_impact
	in_freeze
	not critical_alert
	msg := concat("", [
		"change freeze ", freeze_name, " is in effect: high-impact steps are denied unless the alert severity is ",
		concat(" or ", data.change_freeze.override_severities),
	])
}

denials contains msg if {
	freeze_override
	step.approval == "never"
	msg := concat("", [
		"change freeze ", freeze_name,
		" is in effect: a high-impact step needs approval, but the step says approval: never",
	])
}

denials contains msg if {
	high_impact
	recent_count >= limit
	msg := concat("", [
		"blast radius: ", step.action, " on ", target, " already ran ", format_int(recent_count, 10),
		" time(s) in the last ", format_int(window_seconds / 60, 10), " min (limit ", format_int(limit, 10), ")",
	])
}

denials contains "exec step names no script (params.script)" if {
	step.action == "exec"
	not has_exec_script
}

denials contains msg if {
	step.action == "exec"
	has_exec_script
	not allowed_script
	msg := concat("", ["exec: script ", exec_script, " is not in the allow-list (data.exec.allowed_scripts)"])
}

denials contains msg if {
	not known_approval_mode
	msg := concat("", ["step approval must be policy, required or never, not ", json.marshal(object.get(step, "approval", null))])
}

# ---- approval needs --------------------------------------------------------------------

needs_approval if {
	low_impact
	step.approval == "required"
}

needs_approval if {
	high_impact
	step.approval in {"policy", "required"}
}

approval_rule := data.approval.change_freeze if freeze_override

else := data.approval.high_impact if high_impact

else := data.approval.required

approval_text := concat("", [
	"needs ", format_int(approval_rule.min_approvals, 10), " approval(s) from ",
	concat(" or ", sort(approval_rule.approvers)),
])

# ---- permits (default deny: an allowed step matches one of these) ---------------------------

permits contains "low-impact step: runs without approval" if {
	low_impact
	step.approval in {"policy", "never"}
}

permits contains concat("", ["step asks for approval: ", approval_text]) if {
	low_impact
	needs_approval
}

permits contains concat("", ["high-impact step: ", approval_text]) if {
	needs_approval
	high_impact
	not freeze_override
}

permits contains concat("", ["change freeze ", freeze_name, " is in effect and the alert is critical: ", approval_text]) if {
	needs_approval
	freeze_override
}

permits contains "high-impact step with approval: never: runs without approval" if {
	high_impact
	step.approval == "never"
	not in_freeze
}

# ---- the output fields ----------------------------------------------------------------------

default allow := false

allow if {
	count(permits) > 0
	count(denials) == 0
}

default require_approval := false

require_approval if {
	allow
	needs_approval
}

default approvers := []

approvers := sort(approval_rule.approvers) if require_approval

default min_approvals := 0

min_approvals := approval_rule.min_approvals if require_approval

four_eyes_note := concat("", ["four-eyes: ", input.run.started_by, " started this run and cannot approve it"]) if {
	require_approval
	is_string(input.run.started_by)
	input.run.started_by != ""
}

reasons := sort(denials) if {
	count(denials) > 0
} else := [concat("", ["no rule allows step ", json.marshal(step.id), " (action ", json.marshal(step.action), ", impact ", json.marshal(step.impact), ")"])] if {
	count(permits) == 0
} else := array.concat(sort(permits), [n | n := four_eyes_note])
