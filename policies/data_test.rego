# Checks on data.json itself: a typo there would quietly change who may do what.
package firebreak.data_test

import data.firebreak.lib
import rego.v1

actor_pattern := `^(slack|oidc|token|local):[A-Za-z0-9._@+-]+$`

person_pattern := `^[A-Za-z0-9._@+-]+$`

test_group_members_are_person_names if {
	every _, members in data.groups {
		count(members) > 0
		every m in members {
			regex.match(person_pattern, m)
		}
	}
}

test_people_names_and_actors_are_well_formed if {
	every name, _ in data.people {
		regex.match(person_pattern, name)
	}
	actors := [a | some _, list in data.people; some a in list]
	every a in actors {
		regex.match(actor_pattern, a)
	}
	count(actors) == count({a | some a in actors})
}

test_every_listed_actor_is_its_person if {
	every name, list in data.people {
		every a in list {
			lib.person(a) == lower(name)
		}
	}
}

test_approval_rules_name_known_groups_and_positive_counts if {
	every _, rule in data.approval {
		count(rule.approvers) > 0
		every entry in rule.approvers {
			startswith(entry, "group:")
			data.groups[substring(entry, 6, -1)]
		}
		is_number(rule.min_approvals)
		rule.min_approvals >= 1
		rule.min_approvals == floor(rule.min_approvals)
	}
}

test_freeze_windows_are_valid if {
	every w in data.change_freeze.windows {
		is_string(w.name)
		lib.time_ns(w.start) < lib.time_ns(w.end)
	}
}

test_blast_radius_limits_are_positive if {
	data.blast_radius.window_seconds > 0
	data.blast_radius.default_limit >= 1
	every _, n in data.blast_radius.limits {
		n >= 1
	}
}

test_exec_scripts_are_plain_relative_paths if {
	every s in data.exec.allowed_scripts {
		not startswith(s, "/")
		not ".." in split(s, "/")
	}
}
