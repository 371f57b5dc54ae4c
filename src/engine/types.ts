import type { CircuitBreaker, PlaybookStep, RunLimits } from '../playbooks/index.js';
import type { NewEvent } from '../timeline/index.js';
import type { Alert } from '../ingest/index.js';

export type RunStatus = 'queued' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'aborted' | 'cancelled';
export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'denied' | 'compensated';
export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'expired' | 'cancelled';
export type RunTrigger = 'alert' | 'schedule' | 'manual';
/** How a run ends. */
export type RunEnd = 'succeeded' | 'failed' | 'aborted' | 'cancelled';

/** What a run executes: the playbook as it was when the run was created (a playbook_revisions row). */
export interface RunDefinition {
  name: string;
  description: string;
  onResolved: 'continue' | 'abort';
  channel?: string;
  concurrency?: { key: string; limit: number };
  limits?: RunLimits;
  circuitBreaker?: CircuitBreaker;
  /** The triggers as written (part of the content: a changed matcher is a new revision). */
  triggers?: unknown[];
  steps: PlaybookStep[];
}

/** A run to create, worked out before anything is written (ingest creates alert runs in its one statement). */
export interface PlannedRun {
  runId: string;
  playbook: string;
  /** Stored once per content in playbook_revisions; the run names it. */
  definition: RunDefinition;
  revision: string;
  /** sha256 of the playbook file's bytes (shown as `playbookHash`). */
  playbookHash: string;
  concurrencyKey: string | null;
  concurrencyLimit: number | null;
  /** The rendered limits key ('' = whole playbook) when the playbook has `limits` or a `circuit_breaker`; else null. */
  limitKey: string | null;
  channel: string | null;
  /** First events of the run's timeline (run.created ...). */
  genesis: NewEvent[];
}

/** A stub answer for a call a dry run does not make. */
export interface DryRunStub {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** How a dry run simulates, stored in runs.dry_run_options. */
export interface DryRunOptions {
  /** Gather steps (prometheus.*, GET/HEAD http.request, other read-only calls) are recorded as would-call too. */
  noGather?: boolean;
  /** Answer for every call not made (default 200 `{}`). */
  stub?: DryRunStub;
  /** Per-step output fields merged over the stubbed output, e.g. `{ error_rate: { value: 0.08 } }`. */
  stubs?: Record<string, Record<string, unknown>>;
  /** Who asked for the dry run (an alert replay runs as the alert would: started_by stays null). */
  requestedBy?: string;
  alertSource?: string;
  /** The stored episode whose alert was replayed. */
  episodeId?: number;
  /** Where the playbook came from: the server's catalog, or sources sent with the request (`replay --diff`). */
  playbooksFrom?: 'server' | 'request';
  /** Set for playbooks sent with the request: they get no secrets, and this says what they see instead. */
  secrets?: string;
  /**
   * Replay of a recorded run (`firebreak replay --since`): each step the
   * recorded run finished is answered with its recorded output (or fails with
   * its recorded error) instead of being called, each policy decision sees the
   * recorded `now` and `history`, and approvals are answered as they were.
   */
  replayOf?: string;
  /** Scripted approval answers per step id, one per round (playbook tests). */
  answers?: Record<string, ScriptedAnswer[]>;
  /** Never wait: `wait` steps end at once and retries follow without backoff. */
  noWait?: boolean;
  /** Not posted to Slack (batch replays, playbook tests). */
  quiet?: boolean;
  /** The time the policy sees as `now` (playbook tests: the same answer on any day). */
  policyNow?: string;
}

/** How a scripted (replayed or tested) approval is answered. */
export type ScriptedAnswer = 'approve' | 'reject' | 'expire' | 'cancel';

/** A dry run whose approvals are scripted never waits for a person: an approval nobody scripted stops it. */
export function isScripted(options: DryRunOptions | null | undefined): boolean {
  return Boolean(options && (options.replayOf !== undefined || options.answers !== undefined));
}

/** A run as its worker sees it (runs row, definition from its revision). */
export interface RunRow {
  id: string;
  playbook: string;
  revision: string;
  definition: RunDefinition;
  status: RunStatus;
  trigger: RunTrigger;
  started_by: string | null;
  episode_id: number | null;
  alert: Record<string, unknown> | null;
  params: Record<string, unknown>;
  dry_run: boolean;
  /** How a dry run simulates (null: defaults; always null for real runs). */
  dry_run_options: DryRunOptions | null;
  concurrency_key: string | null;
  concurrency_limit: number | null;
  /** The rails key (limits / circuit breaker) of an alert run; null when the rails do not count it. */
  limit_key: string | null;
  channel: string | null;
  created_at: Date;
  started_at: Date | null;
  abort_requested_at: Date | null;
  abort_requested_by: string | null;
  abort_reason: string | null;
  /** How a stopping run will end (set by its worker before it compensates). */
  ending: RunEnd | null;
}

export interface StepRow {
  step_id: string;
  position: number;
  action: string;
  target: string | null;
  status: StepStatus;
  attempts: number;
  started_at: Date | null;
  finished_at: Date | null;
  output: unknown;
  error: unknown;
  poll_state: unknown;
  cleared_at: Date | null;
  compensation_status: 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | null;
}

/** The run's latest approval, loaded with the run each turn. */
export interface ApprovalRow {
  id: string;
  step_id: string;
  round: number;
  status: ApprovalStatus;
  decided_by: string | null;
  approvers: string[];
  on_timeout: 'abort' | 'skip' | 'escalate';
  expires_at: Date | null;
  /** The deadline has passed on the database clock. */
  due: boolean;
}

/** A pause that holds runs (src/rails owns pauses; the engine only asks). */
export interface HoldingPause {
  /** null: all automation. */
  playbook: string | null;
  pausedBy: string;
  reason: string;
}

/** What the engine asks of the automation safety rails (src/rails implements it). */
export interface EngineRails {
  /** The pause holding this playbook as this process last saw it (no I/O; refreshed continuously). */
  pausedNow(playbook: string): HoldingPause | undefined;
  /** The same, confirmed against the database (asked before holding a run). */
  paused(playbook: string): Promise<HoldingPause | undefined>;
  /** A run ended (after its last commit): the circuit breaker counts failed runs in a row. */
  runEnded(run: RunRow, status: RunEnd): Promise<void>;
  /** What the rails would do with this run if it were real (dry runs report it, nothing counted). */
  preview(plan: PlannedRun, alert: Alert | null): Promise<RailsPreview>;
}

/** A dry run's report of the rails: the outcome a real run would get, and why. */
export interface RailsPreview {
  outcome: 'started' | 'throttled' | 'cooldown' | 'suppressed' | 'paused';
  reason: string;
}
