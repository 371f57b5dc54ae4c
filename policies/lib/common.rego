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

# Actors are `<method>:<name>` (`token:alice`, `oidc:alice`, `local:alice`,
# `slack:U0123`), or `service` for FIREBREAK_API_TOKEN. On the channels that
# carry a person's name (personal tokens, OIDC, local mode) the name is the
# person; Slack ids are opaque, so data.people says whose they are. An entry
# in data.people always wins (it can also tie differently spelled names).
#
# People are compared without regard to case: `token:alice` and
# `oidc:Alice` (a provider that capitalises names, an address typed as
# Alice@Example.com) are one person, or four-eyes and "approve once" would
# fall to one human using two spellings of their name.
name_methods := {"token", "oidc", "local", "operator"}

person(actor) := lower(name) if {
	is_string(actor)
	some name, actors in data.people
	some listed in actors
	is_string(listed)
	lower(listed) == lower(actor)
} else := lower(name) if {
	is_string(actor)
	i := indexof(actor, ":")
	i > 0
	substring(actor, 0, i) in name_methods
	name := substring(actor, i + 1, -1)
	name != ""
} else := lower(actor) if is_string(actor)

# Two actors are one person: four-eyes and "approve once" count people, not channels.
same_person(a, b) if {
	is_string(a)
	is_string(b)
	person(a) == person(b)
}

# The groups of an identity (the `user` object of an input): those its
# credential carries (a personal token's --group, the OIDC groups claim) and
# those data.groups gives its person.
groups_of(user) := {g | some g in user_groups(user)} | {g |
	some g, people in data.groups
	some member in people
	is_string(member)
	lower(member) == person(user.id)
}

user_groups(user) := user.groups if is_array(user.groups)

else := []

in_group(user, group) if group in groups_of(user)

# The identity may act through an approvers entry: `group:<name>` names the
# members of a group (an unknown group names nobody); any other entry is an
# actor string, matched by person.
via_entry(user, entry) if {
	startswith(entry, "group:")
	in_group(user, substring(entry, 6, -1))
}

via_entry(user, entry) if {
	not startswith(entry, "group:")
	same_person(user.id, entry)
}

# The entries of `approvers` through which `user` may answer.
eligible_via(user, approvers) := {entry |
	some entry in approvers
	via_entry(user, entry)
}

# ---- identities ---------------------------------------------------------------

# A well-formed `user` object: { id, name, method, verified, groups }.
valid_user(user) if {
	is_object(user)
	is_string(user.id)
	user.id != ""
	is_string(user.method)
	is_boolean(user.verified)
}

service(user) if user.method == "service"

# Local mode: no authentication is configured and the server listens on
# loopback only; names there are claims, not proofs (`verified: false`).
local_mode if input.mode == "local"

unverified(user) if user.verified != true

# A person, not the automation behind FIREBREAK_API_TOKEN.
person_identity(user) if {
	valid_user(user)
	not service(user)
}
