/** Input to `firebreak/decision`, asked before every step. */
export interface DecisionInput {
  playbook: { name: string; description?: string };
  step: {
    id: string;
    action: string;
    impact: 'low' | 'high';
    approval: 'policy' | 'required' | 'never';
    params: unknown;
    /**
     * What the step acts on, from the action's `target()` (host, script, channel), the same
     * string the engine records in `history[].target`; the blast-radius rule counts by it.
     * Omitted when the action has no target.
     */
    target?: string;
  };
  alert: unknown;
  run: { id: string; trigger: 'alert' | 'schedule' | 'manual'; started_by: string | null; dry_run: boolean };
  /** Recent non-dry runs of the same action on the same target: newest first. */
  history: Array<{ run_id: string; playbook: string; step_id: string; action: string; target: string; status: string; at: string; impact: 'low' | 'high' }>;
  /** RFC 3339 UTC. */
  now: string;
}

export interface Decision {
  allow: boolean;
  require_approval: boolean;
  approvers: string[];
  min_approvals: number;
  reasons: string[];
}

/** Input to `firebreak/approve`, asked when someone answers an approval. */
export interface ApproveInput {
  approval: {
    id: string;
    run_id: string;
    step_id: string;
    approvers: string[];
    min_approvals: number;
    started_by: string | null;
    playbook: string;
    action: string;
    impact: 'low' | 'high';
    decision: 'approve' | 'reject';
    already_approved_by: string[];
  };
  /** The answering user, as the actor string: `slack:U123`, `console:alice`, `cli:bob`. */
  user: string;
  now: string;
}

export interface ApproveResult {
  allow: boolean;
  reason: string;
}

/** Result of evaluating a policy, with what is needed for the timeline. */
export interface Evaluated<T> {
  result: T;
  /** sha256 of the bundle that answered ('none' when none is loaded). */
  bundleHash: string;
  /** sha256 of the canonical input. */
  inputHash: string;
  /** Set when the policy failed and the result is a fail-closed deny. */
  error?: string;
}

export interface PolicyStatus {
  ready: boolean;
  /** sha256 of the loaded bundle file; 'none' when none is loaded. */
  bundleHash: string;
  /** Why decisions are being denied (missing, corrupt or malformed bundle). */
  reason?: string;
  /** The bundle's `.manifest` revision: the hash of the sources it was built from. */
  revision?: string;
  /** When the current bundle (or failure) was loaded, RFC 3339. */
  loadedAt?: string;
}

/** What the engine asks before each step and on each answer. Implementations must fail closed. */
export interface PolicyGate {
  decide(input: DecisionInput): Promise<Evaluated<Decision>>;
  approve(input: ApproveInput): Promise<Evaluated<ApproveResult>>;
  /** Ready to serve decisions; otherwise why not (for /readyz). */
  status(): PolicyStatus;
  close(): Promise<void>;
}
