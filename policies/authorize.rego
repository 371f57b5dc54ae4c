# Entry point firebreak/authorize: asked before every act a person (or the
# automation behind FIREBREAK_API_TOKEN) asks Firebreak to do: start or abort
# a run, answer an approval (firebreak/approve then judges the answer), manage
# personal tokens, and pause/resume automation, silences, retry and cancel.
#
# The bot reads this package's whole document, so it holds exactly the two
# output fields; the rules behind them are in lib/authorize.rego.
package firebreak.authorize

import data.firebreak.lib.authorize as a
import rego.v1

allow := a.allow

reasons := a.reasons
