# Helpers shared by both entry points.
#
# They live outside firebreak.decision / firebreak.approve on purpose: an entry
# point returns its whole package document, so any helper rule defined there
# would leak into the output object the bot validates.
package firebreak.lib

import rego.v1

# ---- time ------------------------------------------------------------------

# Nanoseconds since the epoch of an RFC 3339 time; undefined when it does not
# parse. (The wasm runtime gets this built-in from src/policy/builtins.ts,
# which mirrors OPA's own; rules that depend on a time must treat "undefined"
# as the unsafe case.)
time_ns(ts) := time.parse_rfc3339_ns(ts)

now_ns := time_ns(input.now)

# ---- people, groups, approvers ----------------------------------------------

# The person behind an actor string, so `console:alice` and `slack:U0SRE1`
# count as one human for four-eyes and "approve once" checks. Actors not
# listed in data.people are their own person.
person(actor) := name if {
	some name, actors in data.people
	actor in actors
} else := actor

same_person(a, b) if {
	is_string(a)
	is_string(b)
	person(a) == person(b)
}

# The actor strings an approvers entry names: `group:<name>` expands to
# data.groups[<name>] (an unknown group names nobody); any other entry is an
# actor string itself (`slack:U123`, `console:alice`).
members(entry) := {m | some m in data.groups[substring(entry, 6, -1)]} if {
	startswith(entry, "group:")
} else := {entry}

# The entries of `approvers` through which `actor` may answer.
eligible_via(actor, approvers) := {entry |
	some entry in approvers
	actor in members(entry)
}
