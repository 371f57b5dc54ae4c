import type { PlaybookStep } from '../playbooks/index.js';

export type RunStatus = 'queued' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'aborted' | 'cancelled';
export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'denied' | 'compensated';
export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'expired' | 'cancelled';
export type RunTrigger = 'alert' | 'schedule' | 'manual';

/** What a run executes: the playbook as it was when the run was created (stored in runs.definition). */
export interface RunDefinition {
  name: string;
  description: string;
  onResolved: 'continue' | 'abort';
  channel?: string;
  concurrency?: { key: string; limit: number };
  steps: PlaybookStep[];
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
}

export interface RunRow {
  id: string;
  playbook: string;
  definition: RunDefinition;
  playbook_hash: string;
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
  channel: string | null;
  created_at: Date;
  started_at: Date | null;
  abort_requested_at: Date | null;
  abort_requested_by: string | null;
  abort_reason: string | null;
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
  compensation_status: string | null;
}
