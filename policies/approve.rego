# Entry point firebreak/approve: asked when someone answers an approval.
#
# The bot reads this package's whole document, so it holds exactly the two
# output fields; the rules behind them are in lib/approve.rego.
package firebreak.approve

import data.firebreak.lib.approve as a
import rego.v1

allow := a.allow

reason := a.reason
