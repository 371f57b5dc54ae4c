/**
 * Every kind of timeline event and the data it carries: the one definition
 * writers (engine, ingest, Slack) and readers (the postmortem view, the Slack
 * projector, replay reports, metrics) compile against. Names and fields are
 * what is stored in timeline_events and read by people and tools: never
 * rename one; add optional fields, or a new kind.
 */

/** A failure as stored (step.failed, step.retrying, compensation.failed); secrets already redacted. */
export interface ErrorInfo {
  message: string;
  code: string;
  retryable?: boolean;
  details?: unknown;
  [extra: string]: unknown;
}

/** The alert fields a run's first event keeps. */
export interface AlertSummary {
  source: string;
  fingerprint: string;
  status: string;
  startsAt: string;
  summary: string;
  severity: string;
  labels: Record<string, string>;
}

/** Who answered an approval and how the approve policy saw it. */
interface PolicyStamp {
  bundleHash: string;
  inputHash: string;
  error?: string;
  /** false: a name given in local mode, not an authenticated identity. */
  verified?: boolean;
  /** Why, in the answerer's words. */
  comment?: string;
}

type RunEnd = {
  reason: string;
  durationMs?: number;
  /** Steps whose `compensate` ran and succeeded / failed. */
  compensated?: string[];
  compensationFailed?: string[];
};

export interface EventData {
  'run.created': {
    playbook: string;
    playbookHash: string;
    trigger: string;
    dryRun: boolean;
    /** The content revision (playbook_revisions.hash) the run executes. */
    revision?: string;
    alert?: AlertSummary;
    params?: Record<string, unknown>;
    concurrencyKey?: string;
    concurrencyLimit?: number;
    /** Dry runs: what the safety rails would do with a real run (nothing counted). */
    rails?: { outcome: string; reason: string };
    warnings?: string[];
    /** Dry runs: what a real run would have held. */
    concurrency?: string;
    dryRunOptions?: Record<string, unknown>;
  };
  'run.queued': { concurrencyKey: string; limit: number; active: number; queuedAhead?: number };
  'run.started': { worker: string; concurrencyKey?: string };
  'run.abort_requested': { reason: string };
  /** Slack's `/firebreak abort` asked the approve policy first. */
  'run.abort_allowed': { entrypoint: string; allow: boolean; reason: string; approvers: string[] } & PolicyStamp;
  'run.abort_refused': { entrypoint: string; allow: boolean; reason: string; approvers: string[] } & PolicyStamp;
  'run.succeeded': RunEnd & { failedSteps?: string[] };
  'run.failed': RunEnd;
  'run.aborted': RunEnd & { neverStarted?: boolean };
  'run.cancelled': RunEnd;
  'alert.resolved': { fingerprint: string; startsAt: string; runStatus: string; onResolved: string | null };
  'policy.decision': {
    stepId: string;
    entrypoint: string;
    allow: boolean;
    requireApproval: boolean;
    approvers: string[];
    minApprovals: number;
    reasons: string[];
    bundleHash: string;
    inputHash: string;
    /** The decision's input (params redacted), so `firebreak policy eval` can replay it. */
    input?: unknown;
    error?: string;
  };
  'approval.requested': {
    approvalId: string;
    stepId: string;
    action: string;
    params: unknown;
    approvers: string[];
    minApprovals: number;
    reasons: string[];
    timeoutMs: number;
    onTimeout: string;
    impact?: string;
    round?: number;
  };
  'approval.escalated': { stepId: string; approvalId: string; round: number; approvers: string[] };
  'approval.vote': ApprovalAnswer;
  'approval.granted': ApprovalAnswer;
  'approval.rejected': ApprovalAnswer;
  'approval.refused': { approvalId: string; stepId: string; decision: string; reason: string } & PolicyStamp;
  'approval.expired': { approvalId: string; stepId: string; onTimeout: string };
  'approval.cancelled': { approvalId: string; stepId: string; reason: string };
  'step.started': { stepId: string; action: string; attempt: number; idempotencyKey: string; params: unknown };
  'step.resumed': { stepId: string; attempt: number; idempotencyKey: string; reason: string };
  'step.polled': { stepId: string; attempt: number; progress: string | null; nextPollInMs: number };
  'step.would_call': { stepId: string; action: string; attempt: number; reason: string; request: unknown; response: unknown };
  'step.succeeded': { stepId: string; action: string; attempt: number; durationMs: number; output: unknown };
  'step.retrying': { stepId: string; attempt: number; error: ErrorInfo; nextAttempt: number; nextAttemptAt: string; durationMs?: number };
  'step.failed': { stepId: string; action: string; attempt: number; error: ErrorInfo; onFailure: string; durationMs?: number };
  'step.skipped': { stepId: string; reason: string; when?: string; approvalId?: string };
  'step.denied': { stepId: string; reasons: string[] };
  'compensation.started': { stepId: string; action: string; idempotencyKey: string };
  'compensation.succeeded': { stepId: string; action: string; output: unknown };
  'compensation.failed': { stepId: string; action: string; error: ErrorInfo };
  /** `firebreak/authorize` (or a fixed rule) on an act: in the run's chain when it concerns a run, else the access chain. */
  'access.allowed': AccessDecision;
  'access.denied': AccessDecision;
  'token.created': { tokenId: string; user: string; groups: string[]; expiresAt: string | null; description?: string };
  'token.revoked': { tokenId: string; user: string; sessionsEnded: number; alreadyRevoked: boolean };
  'session.started': { via: string; method: string; verified: boolean; groups: string[]; client?: string };
  'session.ended': { reason: string; /** Who ended it, when not its holder (a new login in the same browser). */ by?: string };
  // ---- automation safety rails (docs/safety-rails.md): on the automation chain unless noted ----
  /** The kill switch: everything (`playbook` null) or one playbook. */
  'automation.paused': { playbook: string | null; reason: string; pauseId: number; source: 'person' | 'circuit_breaker'; runId?: string };
  'automation.resumed': { playbook: string | null; reason: string; pauseId: number; pausedBy: string; pausedAt: string };
  /** `failures` runs in a row failed for `key`: the playbook is paused (an automation.paused follows). */
  'breaker.tripped': { playbook: string; key: string; failures: number; runIds: string[] };
  'silence.created': { silenceId: string; matchers: string[]; startsAt: string; endsAt: string; reason: string };
  'silence.expired': { silenceId: string; matchers: string[]; reason: string };
  /** A person had a finished run continue from `fromStep` (also on the run's chain as run.retried). */
  'repair.retried': { runId: string; playbook: string; fromStep: string; reason: string; previousStatus: string };
  /** A person ended a run by hand, without compensation (also on the run's chain as run.cancelled). */
  'repair.cancelled': { runId: string; playbook: string; reason: string; previousStatus: string };
  /** On the run's chain: the run continues from `fromStep` with a new attempt. */
  'run.retried': { fromStep: string; reason: string; previousStatus: string; retry: number };
  /** On the run's chain: automation is paused, so the run's next step waits for a resume. */
  'run.held': { stepId: string | null; playbook: string | null; pausedBy: string; reason: string };
  /** On the run's chain: no progress for longer than its current step may take (not itself progress). */
  'run.stuck': { stepId: string | null; lastEventAt: string; thresholdMs: number };
}

/** Who asked to do what, and the answer (src/access). */
interface AccessDecision {
  entrypoint: string;
  action: string;
  resource: Record<string, unknown>;
  user: { id?: string; name?: string; method?: string; verified?: boolean; groups?: string[] };
  allow: boolean;
  reasons: string[];
  bundleHash?: string;
  inputHash?: string;
  error?: string;
}

interface ApprovalAnswer extends PolicyStamp {
  approvalId: string;
  stepId: string;
  decision: string;
  approvals: number;
  minApprovals: number;
  reason: string;
  /** requested -> decided, on the database clock (decisions only). */
  waitedMs?: number;
}

export type EventKind = keyof EventData;

/** An event to append: what happened, who did it, and its data. */
export type NewEvent = { [K in EventKind]: { kind: K; actor: string; data: EventData[K]; time?: Date } }[EventKind];

/** Where an event sits in its chain. */
export interface EventEnvelope {
  id: number;
  chainId: string;
  seq: number;
  runId: string | null;
  /** ISO 8601 UTC. */
  time: string;
  actor: string;
  prevHash: string;
  hash: string;
}

/** A recorded event, narrowed by its kind. */
export type TimelineEvent = { [K in EventKind]: EventEnvelope & { kind: K; data: EventData[K] } }[EventKind];

/** An event of one kind. */
export type EventOf<K extends EventKind> = Extract<TimelineEvent, { kind: K }>;

export const EVENT_KINDS = [
  'run.created',
  'run.queued',
  'run.started',
  'run.abort_requested',
  'run.abort_allowed',
  'run.abort_refused',
  'run.succeeded',
  'run.failed',
  'run.aborted',
  'run.cancelled',
  'alert.resolved',
  'policy.decision',
  'approval.requested',
  'approval.escalated',
  'approval.vote',
  'approval.granted',
  'approval.rejected',
  'approval.refused',
  'approval.expired',
  'approval.cancelled',
  'step.started',
  'step.resumed',
  'step.polled',
  'step.would_call',
  'step.succeeded',
  'step.retrying',
  'step.failed',
  'step.skipped',
  'step.denied',
  'compensation.started',
  'compensation.succeeded',
  'compensation.failed',
  'access.allowed',
  'access.denied',
  'token.created',
  'token.revoked',
  'session.started',
  'session.ended',
  'automation.paused',
  'automation.resumed',
  'breaker.tripped',
  'silence.created',
  'silence.expired',
  'repair.retried',
  'repair.cancelled',
  'run.retried',
  'run.held',
  'run.stuck',
] as const satisfies readonly EventKind[];

// Both directions: every kind is listed, and the list holds nothing else.
type Listed = (typeof EVENT_KINDS)[number];
const everyKindListed: [EventKind] extends [Listed] ? true : never = true;
void everyKindListed;

const KNOWN = new Set<string>(EVENT_KINDS);

export function isEventKind(kind: string): kind is EventKind {
  return KNOWN.has(kind);
}

/** The kinds that end a run. */
export const RUN_END_KINDS = ['run.succeeded', 'run.failed', 'run.aborted', 'run.cancelled'] as const;
export type RunEndKind = (typeof RUN_END_KINDS)[number];

export function isRunEnd(e: { kind: string }): e is { kind: RunEndKind } {
  return (RUN_END_KINDS as readonly string[]).includes(e.kind);
}

/**
 * The end of an exhaustive switch over event kinds: compiling fails when a
 * kind is not handled; at run time an event written by a newer version (a kind
 * this code does not know) gets `fallback`.
 */
export function unhandledKind<T>(event: never, fallback: T): T {
  void event;
  return fallback;
}

/** The step an event is about, when it is about one. */
export function stepIdOf(e: TimelineEvent | NewEvent): string | null {
  const d = e.data as { stepId?: unknown };
  return typeof d.stepId === 'string' ? d.stepId : null;
}
