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

/** How a request's identity was established. */
export type AuthMethod = 'token' | 'oidc' | 'slack' | 'service' | 'local' | 'operator';

/**
 * Who asks, as policies see it: `id` is the actor string written to the
 * timeline (`token:alice`, `oidc:alice`, `slack:U0123`, `service`,
 * `local:alice`), `verified` is false only for names claimed in local mode,
 * `groups` are those the credential carries (a token's `--group`, the OIDC
 * groups claim); policy data adds more by person.
 */
export interface PolicyUser {
  id: string;
  name: string;
  method: AuthMethod;
  verified: boolean;
  groups: string[];
}

/** `local` when no authentication is configured (loopback only), else `authenticated`. */
export type AccessMode = 'local' | 'authenticated';

/** Acts `firebreak/authorize` is asked about. */
export const ACTIONS = [
  'run.start',
  'run.abort',
  'run.retry',
  'run.cancel',
  'approval.answer',
  'token.create',
  'token.list',
  'token.revoke',
  'automation.pause',
  'automation.resume',
  'silence.create',
  'silence.expire',
] as const;
export type Action = (typeof ACTIONS)[number];

/** Input to `firebreak/authorize`, asked before every act a person or automation asks for. */
export interface AuthorizeInput {
  user: PolicyUser;
  action: Action;
  /** What the act is about: `{ playbook, dry_run }`, `{ run_id, playbook, started_by, status }`, `{ approval_id, ... }`, `{ token_id, user }`... */
  resource: Record<string, unknown>;
  mode: AccessMode;
  now: string;
}

export interface AuthorizeResult {
  allow: boolean;
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
  /** Who answers (the authenticated identity). */
  user: PolicyUser;
  mode: AccessMode;
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
  authorize(input: AuthorizeInput): Promise<Evaluated<AuthorizeResult>>;
  /** Ready to serve decisions; otherwise why not (for /readyz). */
  status(): PolicyStatus;
  close(): Promise<void>;
}
