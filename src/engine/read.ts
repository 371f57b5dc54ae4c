/** Read models for the API, CLI and console (camelCase JSON, as the contract shows). */
import { NotFoundError } from '../errors.js';
import type { Queryable } from '../store/index.js';
import * as Q from './queries.js';

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface StepView {
  id: string;
  action: string;
  status: string;
  attempts: number;
  startedAt: string | null;
  finishedAt: string | null;
  output: unknown;
  error: unknown;
  compensation: string | null;
}

export interface ApprovalView {
  id: string;
  runId: string;
  stepId: string;
  round: number;
  status: string;
  approvers: string[];
  minApprovals: number;
  reasons: string[];
  requestedAt: string | null;
  expiresAt: string | null;
  decidedBy: string | null;
  decidedAt: string | null;
  request: unknown;
  onTimeout: string;
}

export interface RunView {
  id: string;
  playbook: string;
  status: string;
  trigger: string;
  startedBy: string | null;
  dryRun: boolean;
  episodeId: number | null;
  /** The playbook revision (playbook_revisions.hash) the run executes: kept for its whole life. */
  revision: string | null;
  createdAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** How many times a person had this run continue (`firebreak retry`). */
  retries: number;
  alert?: unknown;
  params?: unknown;
  channel?: string | null;
  outcome?: unknown;
  abortReason?: string | null;
  /** A dry run's simulation options (stub, noGather, who asked, replayed episode). */
  dryRunOptions?: unknown;
  steps: StepView[];
  approvals: ApprovalView[];
}

/* eslint-disable @typescript-eslint/no-explicit-any */
function stepView(r: any): StepView {
  return {
    id: r.step_id,
    action: r.action,
    status: r.status,
    attempts: r.attempts,
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
    output: r.output,
    error: r.error,
    compensation: r.compensation_status,
  };
}

export function approvalView(r: any): ApprovalView {
  return {
    id: r.id,
    runId: r.run_id,
    stepId: r.step_id,
    round: r.round,
    status: r.status,
    approvers: r.approvers,
    minApprovals: r.min_approvals,
    reasons: r.reasons,
    requestedAt: iso(r.requested_at),
    expiresAt: iso(r.expires_at),
    decidedBy: r.decided_by,
    decidedAt: iso(r.decided_at),
    request: r.request,
    onTimeout: r.on_timeout,
  };
}

function runView(r: any, steps: StepView[], approvals: ApprovalView[], full: boolean): RunView {
  return {
    id: r.id,
    playbook: r.playbook,
    status: r.status,
    trigger: r.trigger,
    startedBy: r.started_by,
    dryRun: r.dry_run,
    episodeId: r.episode_id,
    revision: r.revision ?? null,
    createdAt: iso(r.created_at),
    startedAt: iso(r.started_at ?? null),
    finishedAt: iso(r.finished_at),
    retries: r.retries ?? 0,
    ...(full && { alert: r.alert, params: r.params, channel: r.channel, outcome: r.outcome, abortReason: r.abort_reason }),
    ...(full && r.dry_run && { dryRunOptions: r.dry_run_options ?? {} }),
    steps,
    approvals,
  };
}

async function stepsAndApprovals(db: Queryable, ids: string[]) {
  const [steps, approvals] = await Promise.all([db.query(Q.STEPS_OF_RUNS, [ids]), db.query(Q.APPROVALS_OF_RUNS, [ids])]);
  const stepsByRun = new Map<string, StepView[]>();
  for (const s of steps.rows) (stepsByRun.get(s.run_id) ?? stepsByRun.set(s.run_id, []).get(s.run_id)!).push(stepView(s));
  const approvalsByRun = new Map<string, ApprovalView[]>();
  for (const a of approvals.rows) (approvalsByRun.get(a.run_id) ?? approvalsByRun.set(a.run_id, []).get(a.run_id)!).push(approvalView(a));
  return { stepsByRun, approvalsByRun };
}

/** Steps not yet materialised (a queued run) are shown from the definition as pending. */
function plannedSteps(definition: any): StepView[] {
  return (definition?.steps ?? []).map((s: any) => ({ id: s.id, action: s.action, status: 'pending', attempts: 0, startedAt: null, finishedAt: null, output: null, error: null, compensation: null }));
}

export async function getRun(db: Queryable, id: string): Promise<RunView> {
  if (!UUID.test(id)) throw new NotFoundError(`run ${id} not found`);
  const { rows } = await db.query(Q.RUN_BY_ID, [id]);
  const row = rows[0];
  if (!row) throw new NotFoundError(`run ${id} not found`);
  const { stepsByRun, approvalsByRun } = await stepsAndApprovals(db, [id]);
  const steps = stepsByRun.get(id) ?? plannedSteps(row.definition);
  return runView(row, steps, approvalsByRun.get(id) ?? [], true);
}

export async function listRuns(db: Queryable, filters: { status?: string; playbook?: string; limit?: number }): Promise<RunView[]> {
  const { rows } = await db.query(Q.LIST_RUNS, [filters.status ?? null, filters.playbook ?? null, filters.limit ?? 50]);
  const { stepsByRun, approvalsByRun } = await stepsAndApprovals(db, rows.map((r) => r.id));
  return rows.map((r) => runView(r, stepsByRun.get(r.id) ?? [], approvalsByRun.get(r.id) ?? [], false));
}

/** Runs by id, in list form (GET /api/runs), in the order given; unknown ids left out. */
export async function listRunsByIds(db: Queryable, ids: string[]): Promise<RunView[]> {
  if (ids.length === 0) return [];
  const { rows } = await db.query(Q.RUNS_BY_IDS, [ids]);
  const { stepsByRun, approvalsByRun } = await stepsAndApprovals(db, rows.map((r) => r.id));
  const byId = new Map(rows.map((r) => [r.id as string, runView(r, stepsByRun.get(r.id) ?? [], approvalsByRun.get(r.id) ?? [], false)]));
  return ids.flatMap((id) => byId.get(id) ?? []);
}

export async function listPendingApprovals(db: Queryable): Promise<ApprovalView[]> {
  return (await db.query(Q.PENDING_APPROVALS)).rows.map(approvalView);
}

/** `sinceMs`: first seen in that many ms before the database's now; `since`: at or after that time; `before`: episode ids below it (paging). */
export async function listAlerts(db: Queryable, filters: { status?: string; source?: string; limit?: number; sinceMs?: number; since?: string; before?: number }) {
  const { rows } = await db.query(Q.LIST_ALERTS, [filters.status ?? null, filters.source ?? null, filters.limit ?? 50, filters.sinceMs ?? null, filters.since ?? null, filters.before ?? null]);
  return rows.map((r: any) => ({
    id: r.id,
    source: r.source,
    fingerprint: r.fingerprint,
    startsAt: iso(r.starts_at),
    endsAt: iso(r.ends_at),
    status: r.status,
    deliveries: r.deliveries,
    summary: r.summary,
    severity: r.severity,
    labels: r.labels,
    firstSeenAt: iso(r.first_seen_at),
    lastSeenAt: iso(r.last_seen_at),
    resolvedAt: iso(r.resolved_at),
    runs: r.runs,
    outcomes: (r.outcomes as Array<{ playbook: string | null; outcome: string; runId: string | null; reason: string; at: string }>).map((o) => ({
      playbook: o.playbook,
      outcome: o.outcome,
      ...(o.runId && { runId: o.runId }),
      reason: o.reason,
      at: new Date(o.at).toISOString(),
    })),
  }));
}

/** The run an approval belongs to (access checks record their decision on its chain). */
export async function approvalRunId(db: Queryable, approvalId: string): Promise<string> {
  if (!UUID.test(approvalId)) throw new NotFoundError(`approval ${approvalId} not found`);
  const { rows } = await db.query<{ run_id: string }>(Q.APPROVAL_RUN, [approvalId]);
  if (!rows[0]) throw new NotFoundError(`approval ${approvalId} not found`);
  return rows[0].run_id;
}
