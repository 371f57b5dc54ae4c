/**
 * The postmortem view of a run, computed from its hash chain alone (so what a
 * reviewer reads is what `audit verify` checks): events in UTC with
 * who/what/why, per-step and per-approval summaries, spans for the console's
 * time axis, and the durations reviewers ask for. JSON for tools, Markdown to
 * paste into a postmortem doc.
 */
import { NotFoundError } from '../errors.js';
import type { Queryable } from '../store/index.js';
import { readChain, type TimelineEvent } from './chain.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const RUN_FOR_TIMELINE = `
  select id, playbook, status, trigger, started_by, dry_run, alert, definition,
         created_at, started_at, finished_at, abort_reason, outcome
  from runs where id = $1::uuid`;

/** Where the clock of a postmortem starts: when the alert fired, or (no alert) when the run was created. */
export interface TimelineOrigin {
  kind: 'alert' | 'run';
  time: string;
}

export interface TimelineDurations {
  /** From the origin (alert startsAt, or run creation) to the first step started. */
  alertToFirstActionMs: number | null;
  /** From the origin to the first mitigation step that succeeded (see `mitigation`). */
  alertToMitigationMs: number | null;
  /** Total time spent waiting for approvals (an open one counts up to the end of the run, or now). */
  approvalWaitMs: number;
  /** Run created to run finished; null while the run is active. */
  totalMs: number | null;
  /** From the origin to the run's end; null while the run is active. */
  alertToFinishMs: number | null;
  /** The landmarks the durations are measured to. */
  firstAction: { stepId: string; at: string } | null;
  mitigation: { stepId: string; at: string; simulated: boolean } | null;
}

/** What a step is for, on the console's time axis. */
export type StepCategory = 'gather' | 'mitigation';
export type SpanKind = 'gather' | 'policy' | 'approval' | 'mitigation' | 'compensation';

/** A stretch of time on one step's lane (policy decisions are instants: start = end). */
export interface TimelineSpan {
  stepId: string;
  kind: SpanKind;
  start: string;
  /** null: still open (the run is active). */
  end: string | null;
  outcome: string;
  attempt?: number;
  label: string;
}

export interface StepSummary {
  id: string;
  action: string;
  impact: 'low' | 'high';
  category: StepCategory;
  status: string;
  attempts: number;
  startedAt: string | null;
  finishedAt: string | null;
  /** First attempt started to final outcome, retries and backoff included. */
  durationMs: number | null;
  /** Why it ended the way it did: error message, deny reasons, skip reason. */
  note: string | null;
  compensation: 'running' | 'succeeded' | 'failed' | null;
}

export interface ApprovalSummary {
  id: string;
  stepId: string;
  requestedAt: string;
  approvers: string[];
  minApprovals: number;
  reasons: string[];
  status: 'pending' | 'approved' | 'rejected' | 'expired' | 'cancelled';
  decidedBy: string | null;
  decidedAt: string | null;
  waitMs: number;
  votes: Array<{ actor: string; decision: string; at: string }>;
  /** Answers the approve policy turned down (the wrong person clicked). */
  refused: Array<{ actor: string; reason: string; at: string }>;
}

export interface TimelineEntry {
  seq: number;
  time: string;
  /** Milliseconds since the origin (alert fired / run created). */
  offsetMs: number;
  kind: string;
  actor: string;
  stepId: string | null;
  /** What happened, in one line. */
  summary: string;
  /** Why: policy reasons, approver's verdict, error, skip reason. */
  why: string | null;
  data: Record<string, unknown>;
  hash: string;
}

export interface TimelineView {
  run: {
    id: string;
    playbook: string;
    status: string;
    trigger: string;
    startedBy: string | null;
    dryRun: boolean;
    createdAt: string;
    startedAt: string | null;
    finishedAt: string | null;
    /** Why it ended (abort reason, deny, failure). */
    reason: string | null;
    alert: { summary?: string; severity?: string; startsAt?: string; fingerprint?: string; source?: string; labels?: Record<string, string> } | null;
  };
  origin: TimelineOrigin;
  durations: TimelineDurations;
  steps: StepSummary[];
  approvals: ApprovalSummary[];
  spans: TimelineSpan[];
  events: TimelineEntry[];
  chain: { events: number; head: string | null };
  generatedAt: string;
}

export interface TimelineOptions {
  /** Clock for open intervals (approval still pending, run still active). */
  now?: () => number;
  /**
   * Extra redaction pass over everything rendered (the app passes its secret
   * redactor). Events are already redacted when written; this also covers
   * values that became secrets later.
   */
  redact?: (value: unknown) => unknown;
}

// ---------- small formatting helpers ----------

const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v));
const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(str) : []);
const errorMessage = (v: unknown): string => str((v as { message?: unknown } | undefined)?.message ?? v);
const ms = (iso: string): number => Date.parse(iso);

/** "350 ms", "2.4s", "42s", "3m 05s", "2h 07m", "3d 4h". */
export function formatDuration(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return '—';
  const sign = value < 0 ? '-' : '';
  const abs = Math.abs(value);
  if (abs < 1_000) return `${sign}${Math.round(abs)} ms`;
  if (abs < 10_000) return `${sign}${(Math.floor(abs / 100) / 10).toFixed(1)}s`;
  const s = Math.floor(abs / 1_000);
  if (s < 60) return `${sign}${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${sign}${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${sign}${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${sign}${Math.floor(h / 24)}d ${h % 24}h`;
}

/**
 * Offset from the origin as a relative hint, precise enough to order events a
 * few milliseconds apart: "T+350 ms", "T+42.78s", "T+3m 05.2s", "T+2h 03m 05s", "T-1.20s".
 */
export function formatOffset(offsetMs: number): string {
  const sign = offsetMs < 0 ? '-' : '+';
  const abs = Math.abs(Math.round(offsetMs));
  let text: string;
  if (abs < 1_000) text = `${abs} ms`;
  else if (abs < 60_000) text = `${(Math.floor(abs / 10) / 100).toFixed(2)}s`;
  else if (abs < 3_600_000) text = `${Math.floor(abs / 60_000)}m ${(Math.floor((abs % 60_000) / 100) / 10).toFixed(1).padStart(4, '0')}s`;
  else text = `${Math.floor(abs / 3_600_000)}h ${String(Math.floor((abs % 3_600_000) / 60_000)).padStart(2, '0')}m ${String(Math.floor((abs % 60_000) / 1_000)).padStart(2, '0')}s`;
  return `T${sign}${text}`;
}

/** "2025-03-01 14:05:09 UTC" (seconds; the event table adds milliseconds). */
export function formatUtc(iso: string | null | undefined, options: { millis?: boolean; date?: boolean } = {}): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const full = d.toISOString(); // 2025-03-01T14:05:09.123Z
  const time = options.millis ? full.slice(11, 23) : full.slice(11, 19);
  return options.date === false ? time : `${full.slice(0, 10)} ${time}`;
}

// ---------- what / why ----------

/** One line saying what happened. */
export function summarise(e: Pick<TimelineEvent, 'kind' | 'data' | 'actor'> & { time?: string }): string {
  const d = e.data;
  const step = d.stepId ? `step ${str(d.stepId)}` : '';
  switch (e.kind) {
    case 'run.created': {
      const alert = d.alert as { summary?: string } | undefined;
      return `run created (${str(d.trigger)}) for playbook ${str(d.playbook)}${alert?.summary ? ` on alert "${alert.summary}"` : ''}${d.dryRun ? ' — DRY RUN' : ''}`;
    }
    case 'run.started':
      return 'run started';
    case 'run.queued':
      return `queued: concurrency limit ${str(d.limit)} reached for ${str(d.concurrencyKey)}`;
    case 'run.abort_requested':
      return `abort requested by ${e.actor}`;
    case 'policy.decision':
      return `policy on ${step}: ${d.allow ? (d.requireApproval ? `allowed with approval from ${list(d.approvers).join(', ') || 'any approver'}` : 'allowed') : 'DENIED'}`;
    case 'approval.requested':
      return `approval requested for ${step} (${str(d.action)}) from ${list(d.approvers).join(', ') || 'any approver'}${Number(d.minApprovals) > 1 ? ` (${str(d.minApprovals)} needed)` : ''}`;
    case 'approval.escalated':
      return `approval for ${step} escalated to ${list(d.approvers).join(', ')}`;
    case 'approval.vote':
      return `${e.actor} voted to ${str(d.decision)} ${step} (${str(d.approvals)}/${str(d.minApprovals)})`;
    case 'approval.granted':
      return `${step} approved by ${e.actor}`;
    case 'approval.rejected':
      return `${step} rejected by ${e.actor}`;
    case 'approval.refused':
      return `${e.actor} may not ${str(d.decision) || 'answer'} ${step}`;
    case 'approval.expired':
      return `approval for ${step} expired (on_timeout: ${str(d.onTimeout)})`;
    case 'approval.cancelled':
      return `approval for ${step} cancelled`;
    case 'step.started':
      return `${step} started (${str(d.action)}${Number(d.attempt) > 1 ? `, attempt ${str(d.attempt)}` : ''})`;
    case 'step.resumed':
      return `${step} resumed (attempt ${str(d.attempt)}, same idempotency key)`;
    case 'step.polled':
      return `${step} still waiting${d.progress ? `: ${str(d.progress)}` : ''}`;
    case 'step.succeeded':
      return `${step} succeeded${d.durationMs !== undefined ? ` in ${formatDuration(Number(d.durationMs))}` : ''}${Number(d.attempt) > 1 ? ` (attempt ${str(d.attempt)})` : ''}`;
    case 'step.failed':
      return `${step} failed${Number(d.attempt) > 1 ? ` after ${str(d.attempt)} attempts` : ''}`;
    case 'step.retrying':
    {
      const wait = e.time && typeof d.nextAttemptAt === 'string' ? ms(d.nextAttemptAt) - ms(e.time) : NaN;
      return `${step} attempt ${str(d.attempt)} failed; attempt ${str(d.nextAttempt ?? Number(d.attempt) + 1)} ${Number.isFinite(wait) ? `in ${formatDuration(Math.max(0, wait))}` : `at ${formatUtc(str(d.nextAttemptAt), { millis: true, date: false })} UTC`}`;
    }
    case 'step.skipped':
      return `${step} skipped`;
    case 'step.denied':
      return `${step} DENIED by policy`;
    case 'step.would_call': {
      const r = (d.request ?? {}) as { method?: string; url?: string; script?: string; channel?: string };
      const target = r.url ?? r.script ?? r.channel ?? '';
      return `DRY RUN: ${step} would call ${[r.method, target].filter(Boolean).join(' ')}`.trim();
    }
    case 'compensation.started':
      return `compensating ${step} (${str(d.action)})`;
    case 'compensation.succeeded':
      return `compensated ${step}`;
    case 'compensation.failed':
      return `compensation of ${step} FAILED`;
    case 'alert.resolved':
      return 'alert resolved';
    case 'run.succeeded':
      return `run succeeded${list(d.failedSteps).length ? ` (failed but continued: ${list(d.failedSteps).join(', ')})` : ''}`;
    case 'run.failed':
    case 'run.aborted':
    case 'run.cancelled':
      return `run ${e.kind.slice(4)}${list(d.compensated).length ? `; compensated ${list(d.compensated).join(', ')}` : ''}${list(d.compensationFailed).length ? `; compensation FAILED for ${list(d.compensationFailed).join(', ')}` : ''}`;
    case 'access.allowed':
    case 'access.denied': {
      const user = (d.user ?? {}) as { verified?: boolean };
      return `${e.actor}${user.verified === false ? ' (unverified)' : ''} ${e.kind === 'access.allowed' ? 'may' : 'may NOT'} ${str(d.action)}`;
    }
    case 'session.started':
      return `${e.actor} signed in to the console (${str(d.via)})`;
    case 'session.ended':
      return `${e.actor} signed out`;
    case 'token.created':
      return `personal token ${str(d.tokenId)} created for ${str(d.user)} by ${e.actor}`;
    case 'token.revoked':
      return `personal token ${str(d.tokenId)} of ${str(d.user)} revoked by ${e.actor}`;
    default:
      if (e.kind.startsWith('run.')) return `run ${e.kind.slice(4)}`;
      return `${e.kind}${step ? ` ${step}` : ''}`;
  }
}

/** The "why" of an event, when it has one. */
export function explain(e: Pick<TimelineEvent, 'kind' | 'data'>): string | null {
  const d = e.data;
  const reasons = list(d.reasons).filter(Boolean);
  switch (e.kind) {
    case 'policy.decision':
    case 'approval.requested':
    case 'step.denied':
    case 'access.allowed':
    case 'access.denied':
      return reasons.length ? reasons.join('; ') : d.error ? str(d.error) : null;
    case 'approval.granted':
    case 'approval.rejected':
    case 'approval.refused':
    case 'approval.vote':
    case 'approval.cancelled':
      return d.reason ? str(d.reason) : null;
    case 'step.failed':
    case 'step.retrying':
    case 'compensation.failed':
      return d.error ? errorMessage(d.error) : null;
    case 'step.skipped':
      return [str(d.reason), d.when ? `when: ${str(d.when)}` : ''].filter(Boolean).join(' — ') || null;
    case 'run.queued':
      return d.active !== undefined ? `${str(d.active)} active run(s) hold the key` : null;
    default:
      if (e.kind.startsWith('run.') && d.reason) return str(d.reason);
      return null;
  }
}

// ---------- the view ----------

interface StepDefLike {
  id: string;
  action: string;
  impact?: 'low' | 'high';
  with?: Record<string, unknown>;
}

/** A step mitigates when it is high-impact or changes something (exec, or HTTP other than GET/HEAD). */
function categorise(def: StepDefLike | undefined, params: unknown): StepCategory {
  if (!def) return 'gather';
  if (def.impact === 'high') return 'mitigation';
  if (def.action === 'exec') return 'mitigation';
  if (def.action === 'http.request') {
    const method = String((params as { method?: unknown } | undefined)?.method ?? def.with?.method ?? 'GET').toUpperCase();
    return method === 'GET' || method === 'HEAD' ? 'gather' : 'mitigation';
  }
  return 'gather';
}

const DECISION_KINDS: Record<string, ApprovalSummary['status']> = {
  'approval.granted': 'approved',
  'approval.rejected': 'rejected',
  'approval.expired': 'expired',
  'approval.cancelled': 'cancelled',
};

interface RunRowLike {
  id: string;
  playbook: string;
  status: string;
  trigger: string;
  started_by: string | null;
  dry_run: boolean;
  alert: Record<string, unknown> | null;
  definition: { steps?: StepDefLike[] } | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  abort_reason: string | null;
  outcome: { reason?: unknown } | null;
}

/** Build the view from a run row and its (ordered) chain. Pure: no database, clock injected. */
export function viewFromEvents(run: RunRowLike, events: TimelineEvent[], options: TimelineOptions = {}): TimelineView {
  const now = options.now ?? Date.now;
  const redact = options.redact ?? ((v: unknown) => v);
  const defs = run.definition?.steps ?? [];
  const defById = new Map(defs.map((d) => [d.id, d]));
  const alert = (run.alert ?? null) as (TimelineView['run']['alert'] & Record<string, unknown>) | null;
  const alertStart = alert?.startsAt && !Number.isNaN(Date.parse(alert.startsAt)) ? alert.startsAt : undefined;
  const origin: TimelineOrigin = alertStart ? { kind: 'alert', time: new Date(alertStart).toISOString() } : { kind: 'run', time: run.created_at.toISOString() };
  const originMs = ms(origin.time);
  const finishedMs = run.finished_at?.getTime() ?? null;
  const endOfOpen = finishedMs ?? now();

  // Steps, spans and approvals, replayed from the events.
  const steps = new Map<string, StepSummary>();
  for (const def of defs) {
    steps.set(def.id, { id: def.id, action: def.action, impact: def.impact ?? 'low', category: categorise(def, undefined), status: 'pending', attempts: 0, startedAt: null, finishedAt: null, durationMs: null, note: null, compensation: null });
  }
  const stepOf = (id: string, action = ''): StepSummary => {
    let s = steps.get(id);
    if (!s) {
      s = { id, action, impact: 'low', category: 'gather', status: 'pending', attempts: 0, startedAt: null, finishedAt: null, durationMs: null, note: null, compensation: null };
      steps.set(id, s);
    }
    return s;
  };
  const spans: TimelineSpan[] = [];
  const openExec = new Map<string, TimelineSpan>();
  const openComp = new Map<string, TimelineSpan>();
  const approvals = new Map<string, ApprovalSummary>();
  const openApprovalSpan = new Map<string, TimelineSpan>();
  let firstAction: TimelineDurations['firstAction'] = null;
  let mitigation: TimelineDurations['mitigation'] = null;

  const closeExec = (stepId: string, at: string, outcome: string) => {
    const span = openExec.get(stepId);
    if (span) {
      span.end = at;
      span.outcome = outcome;
      span.label = `${stepId}: ${span.kind} attempt ${span.attempt ?? 1} ${outcome} (${formatDuration(ms(at) - ms(span.start))})`;
      openExec.delete(stepId);
    }
  };
  const finishStep = (s: StepSummary, status: string, at: string, note: string | null) => {
    s.status = status;
    s.finishedAt = at;
    s.durationMs = s.startedAt ? ms(at) - ms(s.startedAt) : null;
    if (note !== null) s.note = note;
  };

  for (const e of events) {
    const d = e.data;
    const stepId = typeof d.stepId === 'string' ? d.stepId : null;
    switch (e.kind) {
      case 'step.started': {
        const s = stepOf(stepId!, str(d.action));
        s.category = categorise(defById.get(s.id) ?? { id: s.id, action: s.action }, d.params);
        s.status = 'running';
        s.attempts = Math.max(s.attempts, Number(d.attempt) || s.attempts + 1);
        s.startedAt ??= e.time;
        if (!firstAction) firstAction = { stepId: s.id, at: e.time };
        const span: TimelineSpan = { stepId: s.id, kind: s.category, start: e.time, end: null, outcome: 'running', attempt: Number(d.attempt) || 1, label: `${s.id}: ${s.category} attempt ${str(d.attempt)} running` };
        spans.push(span);
        openExec.set(s.id, span);
        break;
      }
      case 'step.succeeded': {
        const s = stepOf(stepId!);
        closeExec(s.id, e.time, 'succeeded');
        const attempt = Number(d.attempt) || s.attempts;
        finishStep(s, 'succeeded', e.time, attempt > 1 ? `succeeded on attempt ${attempt}; before: ${s.note ?? 'failed'}` : null);
        if (!mitigation && s.category === 'mitigation' && (s.impact === 'high' || !defs.some((x) => x.impact === 'high'))) {
          mitigation = { stepId: s.id, at: e.time, simulated: run.dry_run };
        }
        break;
      }
      case 'step.retrying': {
        const s = stepOf(stepId!);
        closeExec(s.id, e.time, 'failed, retrying');
        s.status = 'retrying';
        s.note = `attempt ${str(d.attempt)} failed: ${errorMessage(d.error)}`;
        break;
      }
      case 'step.failed': {
        const s = stepOf(stepId!);
        closeExec(s.id, e.time, 'failed');
        finishStep(s, 'failed', e.time, errorMessage(d.error));
        break;
      }
      case 'step.denied': {
        const s = stepOf(stepId!);
        finishStep(s, 'denied', e.time, list(d.reasons).join('; ') || 'denied by policy');
        break;
      }
      case 'step.skipped': {
        const s = stepOf(stepId!);
        finishStep(s, 'skipped', e.time, explain(e));
        break;
      }
      case 'policy.decision': {
        if (!stepId) break;
        const outcome = d.allow ? (d.requireApproval ? 'approval required' : 'allowed') : 'denied';
        const why = list(d.reasons).join('; ');
        spans.push({ stepId, kind: 'policy', start: e.time, end: e.time, outcome, label: `${stepId}: policy ${outcome}${why ? ` — ${why}` : ''}` });
        break;
      }
      case 'approval.requested': {
        const id = str(d.approvalId);
        const a: ApprovalSummary = { id, stepId: stepId ?? '', requestedAt: e.time, approvers: list(d.approvers), minApprovals: Number(d.minApprovals) || 1, reasons: list(d.reasons), status: 'pending', decidedBy: null, decidedAt: null, waitMs: 0, votes: [], refused: [] };
        approvals.set(id, a);
        const span: TimelineSpan = { stepId: a.stepId, kind: 'approval', start: e.time, end: null, outcome: 'pending', label: `${a.stepId}: waiting for approval from ${a.approvers.join(', ') || 'any approver'}` };
        spans.push(span);
        openApprovalSpan.set(id, span);
        if (a.stepId) stepOf(a.stepId).status = 'waiting';
        break;
      }
      case 'approval.escalated': {
        const a = approvals.get(str(d.approvalId));
        if (a) a.approvers = list(d.approvers);
        break;
      }
      case 'approval.vote':
      case 'approval.granted':
      case 'approval.rejected':
      case 'approval.expired':
      case 'approval.cancelled': {
        const a = approvals.get(str(d.approvalId));
        if (!a) break;
        if (d.decision) a.votes.push({ actor: e.actor, decision: str(d.decision), at: e.time });
        const status = DECISION_KINDS[e.kind];
        if (status && a.status === 'pending') {
          a.status = status;
          a.decidedBy = status === 'expired' ? null : e.actor;
          a.decidedAt = e.time;
          a.waitMs = ms(e.time) - ms(a.requestedAt);
          const span = openApprovalSpan.get(a.id);
          if (span) {
            span.end = e.time;
            span.outcome = status;
            span.label = `${a.stepId}: approval ${status}${a.decidedBy ? ` by ${a.decidedBy}` : ''} after ${formatDuration(a.waitMs)}`;
            openApprovalSpan.delete(a.id);
          }
          const s = a.stepId ? steps.get(a.stepId) : undefined;
          if (s && s.status === 'waiting') {
            if (status === 'approved') s.status = 'pending';
            else s.note = `approval ${status}${a.decidedBy ? ` by ${a.decidedBy}` : ''}`;
          }
        }
        break;
      }
      case 'approval.refused': {
        const a = approvals.get(str(d.approvalId));
        a?.refused.push({ actor: e.actor, reason: str(d.reason), at: e.time });
        break;
      }
      case 'compensation.started': {
        const s = stepOf(stepId!);
        s.compensation = 'running';
        const span: TimelineSpan = { stepId: s.id, kind: 'compensation', start: e.time, end: null, outcome: 'running', label: `${s.id}: compensating (${str(d.action)})` };
        spans.push(span);
        openComp.set(s.id, span);
        break;
      }
      case 'compensation.succeeded':
      case 'compensation.failed': {
        const s = stepOf(stepId!);
        const ok = e.kind === 'compensation.succeeded';
        s.compensation = ok ? 'succeeded' : 'failed';
        if (ok) s.status = 'compensated';
        else s.note = `compensation failed: ${errorMessage(d.error)}`;
        const span = openComp.get(s.id);
        if (span) {
          span.end = e.time;
          span.outcome = ok ? 'succeeded' : 'failed';
          span.label = `${s.id}: compensation ${span.outcome} (${formatDuration(ms(e.time) - ms(span.start))})`;
          openComp.delete(s.id);
        }
        break;
      }
      default:
        break;
    }
  }

  // A finished run closes whatever is still open at its end; pending steps were never reached.
  const endIso = run.finished_at?.toISOString() ?? null;
  for (const span of spans) {
    if (span.end === null && endIso) {
      span.end = endIso;
      span.outcome = span.kind === 'approval' ? 'cancelled' : 'interrupted';
    }
  }
  for (const a of approvals.values()) if (a.status === 'pending') a.waitMs = endOfOpen - ms(a.requestedAt);
  if (endIso) {
    for (const s of steps.values()) {
      if (s.status === 'pending' || s.status === 'waiting') {
        s.status = 'skipped';
        s.note ??= 'not reached';
      }
    }
  }

  const approvalWaitMs = [...approvals.values()].reduce((sum, a) => sum + Math.max(0, a.waitMs), 0);
  const durations: TimelineDurations = {
    alertToFirstActionMs: firstAction ? ms((firstAction as { at: string }).at) - originMs : null,
    alertToMitigationMs: mitigation ? ms((mitigation as { at: string }).at) - originMs : null,
    approvalWaitMs,
    totalMs: finishedMs !== null ? finishedMs - run.created_at.getTime() : null,
    alertToFinishMs: finishedMs !== null ? finishedMs - originMs : null,
    firstAction,
    mitigation,
  };

  const finalEvent = [...events].reverse().find((e) => /^run\.(succeeded|failed|aborted|cancelled)$/.test(e.kind));
  const reason = run.abort_reason ?? (finalEvent?.data.reason ? str(finalEvent.data.reason) : null) ?? (run.outcome?.reason ? str(run.outcome.reason) : null);

  const view: TimelineView = {
    run: {
      id: run.id,
      playbook: run.playbook,
      status: run.status,
      trigger: run.trigger,
      startedBy: run.started_by,
      dryRun: run.dry_run,
      createdAt: run.created_at.toISOString(),
      startedAt: run.started_at?.toISOString() ?? null,
      finishedAt: endIso,
      reason,
      alert: alert
        ? {
            summary: alert.summary,
            severity: alert.severity,
            startsAt: alert.startsAt,
            fingerprint: alert.fingerprint,
            source: alert.source,
            ...(alert.labels && typeof alert.labels === 'object' ? { labels: alert.labels as Record<string, string> } : {}),
          }
        : null,
    },
    origin,
    durations,
    steps: [...steps.values()],
    approvals: [...approvals.values()],
    spans,
    events: events.map((e) => ({
      seq: e.seq,
      time: e.time,
      offsetMs: ms(e.time) - originMs,
      kind: e.kind,
      actor: e.actor,
      stepId: typeof e.data.stepId === 'string' ? e.data.stepId : null,
      summary: summarise(e),
      why: explain(e),
      data: e.data,
      hash: e.hash,
    })),
    chain: { events: events.length, head: events.at(-1)?.hash ?? null },
    generatedAt: new Date(now()).toISOString(),
  };
  return redact(view) as TimelineView;
}

/** The postmortem view of one run, read from its chain. Throws NotFoundError for an unknown id. */
export async function buildTimelineView(db: Queryable, runId: string, options: TimelineOptions = {}): Promise<TimelineView> {
  if (!UUID.test(runId)) throw new NotFoundError(`run ${runId} not found`);
  const { rows } = await db.query<RunRowLike>(RUN_FOR_TIMELINE, [runId]);
  const run = rows[0];
  if (!run) throw new NotFoundError(`run ${runId} not found`);
  const events = await readChain(db, runId);
  return viewFromEvents(run, events, options);
}

// ---------- Markdown ----------

/** Escape free text for a Markdown table cell: no HTML, no accidental emphasis/links, one line. */
export function mdCell(text: string): string {
  return text
    .replace(/\r?\n|\r/g, ' ')
    .replace(/([\\`*[\]<>|])/g, '\\$1')
    .replace(/(^|\W)_|_(?=\W|$)/g, (m) => m.replace('_', '\\_'));
}

/** Inline code that survives backticks and table pipes. */
export function mdCode(text: string): string {
  const t = text.replace(/\r?\n|\r/g, ' ').replace(/\|/g, '\\|');
  const longest = Math.max(0, ...(t.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  return longest > 0 ? `${fence} ${t} ${fence}` : `${fence}${t}${fence}`;
}

const STATUS_WORD: Record<string, string> = { succeeded: 'succeeded', failed: '**failed**', aborted: '**aborted**', cancelled: 'cancelled', denied: '**denied**', compensated: 'compensated' };

export function timelineMarkdown(view: TimelineView): string {
  const r = view.run;
  const d = view.durations;
  const origin = view.origin;
  const dates = new Set(view.events.map((e) => e.time.slice(0, 10)));
  const oneDay = dates.size <= 1;
  const when = (iso: string | null) => (iso ? `${formatUtc(iso)} (${formatOffset(ms(iso) - ms(origin.time))})` : '—');
  const sim = r.dryRun ? ' (simulated)' : '';
  const lines: string[] = [];

  lines.push(`# Timeline: ${mdCell(r.playbook)} run ${mdCode(r.id.slice(0, 8))}${r.dryRun ? ' — DRY RUN' : ''}`, '');
  if (r.dryRun) {
    lines.push('> **DRY RUN — nothing was changed.** Side-effecting calls were recorded as "would call" with their rendered request instead of being sent; durations below are from the simulation.', '');
  }
  lines.push('| | |', '|---|---|');
  lines.push(`| Run | ${mdCode(r.id)}${r.dryRun ? ' (dry run)' : ''} |`);
  lines.push(`| Playbook | ${mdCode(r.playbook)} |`);
  lines.push(`| Status | ${STATUS_WORD[r.status] ?? mdCell(r.status)}${r.reason ? ` — ${mdCell(r.reason)}` : ''} |`);
  lines.push(`| Trigger | ${mdCell(r.trigger)}${r.startedBy ? ` by ${mdCell(r.startedBy)}` : ''} |`);
  if (r.alert) {
    const a = r.alert;
    lines.push(`| Alert | ${mdCell(a.summary || '(no summary)')}${a.severity ? ` — severity ${mdCell(a.severity)}` : ''}${a.source ? `, from ${mdCell(a.source)}` : ''}${a.fingerprint ? ` (fingerprint ${mdCode(a.fingerprint)})` : ''} |`);
    lines.push(`| Alert fired | ${formatUtc(a.startsAt)} UTC |`);
  }
  lines.push(`| Run created | ${when(r.createdAt)} |`);
  lines.push(`| Run finished | ${r.finishedAt ? when(r.finishedAt) : 'still active'} |`);
  lines.push('');
  lines.push(`Times are UTC. T+ is the time since ${origin.kind === 'alert' ? 'the alert fired' : 'the run was created (no alert)'}, ${formatUtc(origin.time)} UTC.`, '');

  lines.push('## Key durations', '', '| Measure | Duration | Measured |', '|---|---|---|');
  const from = origin.kind === 'alert' ? 'alert fired' : 'run created';
  const From = origin.kind === 'alert' ? 'Alert' : 'Run created';
  lines.push(`| ${From} → first action | ${formatDuration(d.alertToFirstActionMs)} | ${d.firstAction ? `${from} → step ${mdCode(d.firstAction.stepId)} started` : 'no step started'} |`);
  lines.push(`| ${From} → mitigation${sim} | ${formatDuration(d.alertToMitigationMs)} | ${d.mitigation ? `${from} → step ${mdCode(d.mitigation.stepId)} succeeded` : 'no mitigation step succeeded'} |`);
  const n = view.approvals.length;
  lines.push(`| Waiting for approvals | ${formatDuration(d.approvalWaitMs)} | ${n === 0 ? 'no approval asked' : `${n} approval${n === 1 ? '' : 's'}, requested → decided`} |`);
  lines.push(`| Run total | ${formatDuration(d.totalMs)} | ${d.totalMs === null ? 'run still active' : 'run created → finished'} |`);
  lines.push(`| ${From} → run end | ${formatDuration(d.alertToFinishMs)} | ${d.alertToFinishMs === null ? 'run still active' : `${from} → run finished`} |`);
  lines.push('');

  lines.push('## Steps', '', '| Step | Action | Impact | Outcome | Attempts | Started (UTC) | Took | Notes |', '|---|---|---|---|---|---|---|---|');
  for (const s of view.steps) {
    const outcome = `${STATUS_WORD[s.status] ?? mdCell(s.status)}${s.compensation && s.status !== 'compensated' ? ` (compensation ${mdCell(s.compensation)})` : ''}`;
    lines.push(`| ${mdCode(s.id)} | ${mdCode(s.action)} | ${s.impact} | ${outcome} | ${s.attempts} | ${s.startedAt ? formatUtc(s.startedAt, { date: !oneDay }) : '—'} | ${formatDuration(s.durationMs)} | ${mdCell(s.note ?? '')} |`);
  }
  lines.push('');

  if (view.approvals.length > 0) {
    lines.push('## Approvals', '', '| Step | Requested (UTC) | Approvers | Why asked | Decision | By | Waited |', '|---|---|---|---|---|---|---|');
    for (const a of view.approvals) {
      const refused = a.refused.length ? `; refused: ${a.refused.map((x) => `${x.actor} (${x.reason})`).join(', ')}` : '';
      lines.push(
        `| ${mdCode(a.stepId)} | ${formatUtc(a.requestedAt, { date: !oneDay })} | ${mdCell(a.approvers.join(', ') || 'any')} | ${mdCell(a.reasons.join('; '))} | ${a.status}${a.decidedAt ? ` at ${formatUtc(a.decidedAt, { date: !oneDay })}` : ''}${mdCell(refused)} | ${mdCell(a.decidedBy ?? '—')} | ${formatDuration(a.waitMs)} |`,
      );
    }
    lines.push('');
  }

  lines.push(`## Timeline${oneDay && dates.size === 1 ? ` (UTC, ${[...dates][0]})` : ' (UTC)'}`, '', '| Time | T+ | Who | What | Why |', '|---|---|---|---|---|');
  for (const e of view.events) {
    lines.push(`| ${formatUtc(e.time, { millis: true, date: !oneDay })} | ${formatOffset(e.offsetMs)} | ${mdCell(e.actor)} | ${mdCell(e.summary)} | ${mdCell(e.why ?? '')} |`);
  }
  lines.push('');
  lines.push(`${view.chain.events} events, hash chain head ${view.chain.head ? mdCode(view.chain.head) : '(none)'}. Verify with ${mdCode(`firebreak audit verify ${r.id}`)}.`, '');
  return lines.join('\n');
}

export async function renderTimeline(db: Queryable, runId: string, format: 'json' | 'md', options: TimelineOptions = {}): Promise<TimelineView | string> {
  const view = await buildTimelineView(db, runId, options);
  return format === 'md' ? timelineMarkdown(view) : view;
}
