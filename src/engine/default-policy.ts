import { canonicalJson, sha256Hex } from '../timeline/index.js';
import type { ApproveInput, ApproveResult, Decision, DecisionInput, Evaluated, PolicyGate } from '../policy/types.js';

/**
 * The gate used when no compiled OPA bundle is configured: high-impact steps
 * need an approval, anything else may run; whoever started a manual run may
 * not approve it. Deliberately conservative.
 */
export function createDefaultPolicyGate(): PolicyGate {
  const bundleHash = 'builtin-default';
  return {
    async decide(input: DecisionInput): Promise<Evaluated<Decision>> {
      const high = input.step.impact === 'high';
      return {
        result: {
          allow: true,
          require_approval: high,
          approvers: [],
          min_approvals: 1,
          reasons: [high ? 'high-impact step needs an approval (built-in default policy)' : 'low-impact step allowed (built-in default policy)'],
        },
        bundleHash,
        inputHash: sha256Hex(canonicalJson(input)),
      };
    },
    async approve(input: ApproveInput): Promise<Evaluated<ApproveResult>> {
      const self = input.approval.started_by !== null && input.approval.started_by === input.user;
      const listed = input.approval.approvers.length === 0 || input.approval.approvers.includes(input.user);
      const allow = !self && listed;
      return {
        result: { allow, reason: self ? 'four-eyes: you started this run' : listed ? 'allowed (built-in default policy)' : `${input.user} is not among the approvers` },
        bundleHash,
        inputHash: sha256Hex(canonicalJson(input)),
      };
    },
    status: () => ({ ready: true, bundleHash }),
    async close() {},
  };
}
