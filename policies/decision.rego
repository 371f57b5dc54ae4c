# Entry point firebreak/decision: asked before every step.
#
# The bot reads this package's whole document, so it holds exactly the five
# output fields; the rules behind them are in lib/decision.rego.
package firebreak.decision

import data.firebreak.lib.decision as d
import rego.v1

allow := d.allow

require_approval := d.require_approval

approvers := d.approvers

min_approvals := d.min_approvals

reasons := d.reasons
