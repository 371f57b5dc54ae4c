/**
 * What happened in a run, rebuilt from its hash chain alone (so what a reader
 * sees is what `audit verify` checks). One reducer, `applyEvent`, folds events
 * into a RunStory; every reader that needs a run's state from its events uses
 * it: the postmortem view below (API, CLI, console), the Slack projector (an
 * approval's votes and state as of each event), replay reports (decisions,
 * rendered requests, would-calls per step), and metrics.
 */
import { isRunEnd, unhandledKind, type ErrorInfo, type EventData, type TimelineEvent } from './events.js';
import { formatDuration, formatUtc } from './format.js';

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

/** The policy decision a step was cleared (or stopped) by. */
export interface DecisionSummary {
  allow: boolean;
  requireApproval: boolean;
  approvers: string[];
  minApprovals: number;
  reasons: string[];
  error?: string;
}

/** A call a dry run recorded instead of making. */
export interface WouldCall {
  /** `side_effect`, or `gather` (with noGather). */
  reason: string;
  request: unknown;
  response?: unknown;
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
  /** The first policy decision about the step (an approved step is decided again when it clears; the first says it all). */
  decision: DecisionSummary | null;
  /** Rendered params of the first attempt (secrets redacted). */
  params?: unknown;
  /** Rendered params an approval was asked for (what the step calls once approved). */
  requested?: unknown;
  /** A skip recorded by a step.skipped event (not merely "not reached"), its reason and its `when:`. */
  skipped: boolean;
  skipReason?: string;
  when?: string;
  /** Calls a dry run recorded instead of making. */
  wouldCalls: WouldCall[];
  /** The compensation's rendered request in a dry run, or its error. */
  compensationWouldCall?: unknown;
  compensationError?: string;
}

export interface ApprovalSummary {
  id: string;
  stepId: string;
  round: number;
  action: string;
  params: unknown;
  requestedAt: string;
  /** requestedAt + the approval's timeout. */
  expiresAt: string | null;
  onTimeout: string;
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
  /** Why it was cancelled (alert resolved, run aborted). */
  cancelReason?: string;
}

/** The run row fields a story starts from. */
export interface StoryRun {
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

interface StepDefLike {
  id: string;
  action: string;
  impact?: 'low' | 'high';
  with?: Record<string, unknown>;
}

/** A run's state as of the events folded so far. */
export interface RunStory {
  run: StoryRun;
  steps: Map<string, StepSummary>;
  approvals: Map<string, ApprovalSummary>;
  spans: TimelineSpan[];
  firstAction: TimelineDurations['firstAction'];
  mitigation: TimelineDurations['mitigation'];
  /** The event that ended the run, once folded. */
  end: { kind: 'run.succeeded' | 'run.failed' | 'run.aborted' | 'run.cancelled'; at: string; data: EventData['run.succeeded'] } | null;
  events: number;
  /** Open intervals, closed by later events. */
  open: { exec: Map<string, TimelineSpan>; comp: Map<string, TimelineSpan>; approval: Map<string, TimelineSpan> };
}

// ---------- small helpers ----------

const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v));
const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(str) : []);
const errorMessage = (v: ErrorInfo | unknown): string => str((v as { message?: unknown } | undefined)?.message ?? v);
const ms = (iso: string): number => Date.parse(iso);

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

function newStep(id: string, action: string, def?: StepDefLike): StepSummary {
  return {
    id,
    action,
    impact: def?.impact ?? 'low',
    category: categorise(def, undefined),
    status: 'pending',
    attempts: 0,
    startedAt: null,
    finishedAt: null,
    durationMs: null,
    note: null,
    compensation: null,
    decision: null,
    skipped: false,
    wouldCalls: [],
  };
}

// ---------- what / why ----------

/** One line saying what happened. */
export function summarise(e: TimelineEvent): string {
  const step = 'stepId' in e.data && e.data.stepId ? `step ${str(e.data.stepId)}` : '';
  switch (e.kind) {
    case 'run.created':
      return `run created (${str(e.data.trigger)}) for playbook ${str(e.data.playbook)}${e.data.alert?.summary ? ` on alert "${e.data.alert.summary}"` : ''}${e.data.dryRun ? ' — DRY RUN' : ''}`;
    case 'run.started':
      return 'run started';
    case 'run.queued':
      return `queued: concurrency limit ${str(e.data.limit)} reached for ${str(e.data.concurrencyKey)}`;
    case 'run.abort_requested':
      return `abort requested by ${e.actor}`;
    case 'run.abort_allowed':
      return `${e.actor} may abort the run`;
    case 'run.abort_refused':
      return `${e.actor} may not abort the run`;
    case 'policy.decision':
      return `policy on ${step}: ${e.data.allow ? (e.data.requireApproval ? `allowed with approval from ${list(e.data.approvers).join(', ') || 'any approver'}` : 'allowed') : 'DENIED'}`;
    case 'approval.requested':
      return `approval requested for ${step} (${str(e.data.action)}) from ${list(e.data.approvers).join(', ') || 'any approver'}${Number(e.data.minApprovals) > 1 ? ` (${str(e.data.minApprovals)} needed)` : ''}`;
    case 'approval.escalated':
      return `approval for ${step} escalated to ${list(e.data.approvers).join(', ')}`;
    case 'approval.vote':
      return `${e.actor} voted to ${str(e.data.decision)} ${step} (${str(e.data.approvals)}/${str(e.data.minApprovals)})`;
    case 'approval.granted':
      return `${step} approved by ${e.actor}`;
    case 'approval.rejected':
      return `${step} rejected by ${e.actor}`;
    case 'approval.refused':
      return `${e.actor} may not ${str(e.data.decision) || 'answer'} ${step}`;
    case 'approval.expired':
      return `approval for ${step} expired (on_timeout: ${str(e.data.onTimeout)})`;
    case 'approval.cancelled':
      return `approval for ${step} cancelled`;
    case 'step.started':
      return `${step} started (${str(e.data.action)}${Number(e.data.attempt) > 1 ? `, attempt ${str(e.data.attempt)}` : ''})`;
    case 'step.resumed':
      return `${step} resumed (attempt ${str(e.data.attempt)}, same idempotency key)`;
    case 'step.polled':
      return `${step} still waiting${e.data.progress ? `: ${str(e.data.progress)}` : ''}`;
    case 'step.succeeded':
      return `${step} succeeded${e.data.durationMs !== undefined ? ` in ${formatDuration(Number(e.data.durationMs))}` : ''}${Number(e.data.attempt) > 1 ? ` (attempt ${str(e.data.attempt)})` : ''}`;
    case 'step.failed':
      return `${step} failed${Number(e.data.attempt) > 1 ? ` after ${str(e.data.attempt)} attempts` : ''}`;
    case 'step.retrying': {
      const wait = typeof e.data.nextAttemptAt === 'string' ? ms(e.data.nextAttemptAt) - ms(e.time) : NaN;
      return `${step} attempt ${str(e.data.attempt)} failed; attempt ${str(e.data.nextAttempt ?? Number(e.data.attempt) + 1)} ${Number.isFinite(wait) ? `in ${formatDuration(Math.max(0, wait))}` : `at ${formatUtc(str(e.data.nextAttemptAt), { millis: true, date: false })} UTC`}`;
    }
    case 'step.skipped':
      return `${step} skipped`;
    case 'step.denied':
      return `${step} DENIED by policy`;
    case 'step.would_call': {
      const r = (e.data.request ?? {}) as { method?: string; url?: string; script?: string; channel?: string };
      const target = r.url ?? r.script ?? r.channel ?? '';
      return `DRY RUN: ${step} would call ${[r.method, target].filter(Boolean).join(' ')}`.trim();
    }
    case 'compensation.started':
      return `compensating ${step} (${str(e.data.action)})`;
    case 'compensation.succeeded':
      return `compensated ${step}`;
    case 'compensation.failed':
      return `compensation of ${step} FAILED`;
    case 'alert.resolved':
      return 'alert resolved';
    case 'run.succeeded':
      return `run succeeded${list(e.data.failedSteps).length ? ` (failed but continued: ${list(e.data.failedSteps).join(', ')})` : ''}`;
    case 'run.failed':
    case 'run.aborted':
    case 'run.cancelled':
      return `run ${e.kind.slice(4)}${list(e.data.compensated).length ? `; compensated ${list(e.data.compensated).join(', ')}` : ''}${list(e.data.compensationFailed).length ? `; compensation FAILED for ${list(e.data.compensationFailed).join(', ')}` : ''}`;
    case 'access.allowed':
    case 'access.denied':
      return `${e.actor}${e.data.user?.verified === false ? ' (unverified)' : ''} ${e.kind === 'access.allowed' ? 'may' : 'may NOT'} ${str(e.data.action)}`;
    case 'session.started':
      return `${e.actor} signed in to the console (${str(e.data.via)})`;
    case 'session.ended':
      return `${e.actor} signed out`;
    case 'token.created':
      return `personal token ${str(e.data.tokenId)} created for ${str(e.data.user)} by ${e.actor}`;
    case 'token.revoked':
      return `personal token ${str(e.data.tokenId)} of ${str(e.data.user)} revoked by ${e.actor}`;
    case 'automation.paused':
      return `${e.data.playbook ? `playbook ${str(e.data.playbook)}` : 'all automation'} PAUSED by ${e.actor}`;
    case 'automation.resumed':
      return `${e.data.playbook ? `playbook ${str(e.data.playbook)}` : 'all automation'} resumed by ${e.actor}`;
    case 'breaker.tripped':
      return `circuit breaker of ${str(e.data.playbook)} tripped: ${str(e.data.failures)} failed runs in a row${e.data.key ? ` for ${str(e.data.key)}` : ''}`;
    case 'silence.created':
      return `silence ${str(e.data.silenceId)} (${list(e.data.matchers).join(', ')}) created by ${e.actor}`;
    case 'silence.expired':
      return `silence ${str(e.data.silenceId)} expired by ${e.actor}`;
    case 'repair.retried':
      return `run ${str(e.data.runId)} retried from ${str(e.data.fromStep)} by ${e.actor}`;
    case 'repair.cancelled':
      return `run ${str(e.data.runId)} cancelled by ${e.actor}`;
    case 'run.retried':
      return `run retried from ${str(e.data.fromStep)} by ${e.actor}`;
    case 'run.held':
      return `run held: automation paused${e.data.stepId ? ` before ${str(e.data.stepId)}` : ''}`;
    case 'run.stuck':
      return `run STUCK: no progress since ${formatUtc(str(e.data.lastEventAt), { millis: false, date: false })} UTC`;
    default:
      return unhandledKind(e, `${(e as { kind: string }).kind}${step ? ` ${step}` : ''}`);
  }
}

/** The "why" of an event, when it has one. */
export function explain(e: TimelineEvent): string | null {
  switch (e.kind) {
    case 'policy.decision':
    case 'approval.requested':
    case 'step.denied':
    case 'access.allowed':
    case 'access.denied': {
      const reasons = list(e.data.reasons).filter(Boolean);
      const error = 'error' in e.data ? e.data.error : undefined;
      return reasons.length ? reasons.join('; ') : error ? str(error) : null;
    }
    case 'approval.granted':
    case 'approval.rejected':
    case 'approval.refused':
    case 'approval.vote':
    case 'approval.cancelled':
    case 'run.abort_allowed':
    case 'run.abort_refused':
      return e.data.reason ? str(e.data.reason) : null;
    case 'step.failed':
    case 'step.retrying':
    case 'compensation.failed':
      return e.data.error ? errorMessage(e.data.error) : null;
    case 'step.skipped':
      return [str(e.data.reason), e.data.when ? `when: ${str(e.data.when)}` : ''].filter(Boolean).join(' — ') || null;
    case 'run.queued':
      return e.data.active !== undefined ? `${str(e.data.active)} active run(s) hold the key` : null;
    case 'run.abort_requested':
    case 'run.succeeded':
    case 'run.failed':
    case 'run.aborted':
    case 'run.cancelled':
    case 'automation.paused':
    case 'automation.resumed':
    case 'silence.created':
    case 'silence.expired':
    case 'repair.retried':
    case 'repair.cancelled':
    case 'run.retried':
    case 'run.held':
      return e.data.reason ? str(e.data.reason) : null;
    case 'breaker.tripped':
      return `runs ${list(e.data.runIds).join(', ')}`;
    case 'run.stuck':
      return `no event for longer than ${formatDuration(Number(e.data.thresholdMs))} (the step's timeout plus the lease)`;
    case 'run.created':
      // A dry run says what the safety rails would have done with a real one, when they would have stopped it.
      return e.data.rails && e.data.rails.outcome !== 'started' ? str(e.data.rails.reason) : null;
    case 'run.started':
    case 'alert.resolved':
    case 'approval.escalated':
    case 'approval.expired':
    case 'step.started':
    case 'step.resumed':
    case 'step.polled':
    case 'step.would_call':
    case 'step.succeeded':
    case 'compensation.started':
    case 'compensation.succeeded':
    case 'token.created':
    case 'token.revoked':
    case 'session.started':
    case 'session.ended':
      return null;
    default:
      return unhandledKind(e, null);
  }
}

// ---------- the reducer ----------

const DECIDED: Partial<Record<TimelineEvent['kind'], ApprovalSummary['status']>> = {
  'approval.granted': 'approved',
  'approval.rejected': 'rejected',
  'approval.expired': 'expired',
  'approval.cancelled': 'cancelled',
};

export function createStory(run: StoryRun): RunStory {
  const steps = new Map<string, StepSummary>();
  for (const def of run.definition?.steps ?? []) steps.set(def.id, newStep(def.id, def.action, def));
  return { run, steps, approvals: new Map(), spans: [], firstAction: null, mitigation: null, end: null, events: 0, open: { exec: new Map(), comp: new Map(), approval: new Map() } };
}

function stepOf(story: RunStory, id: string, action = ''): StepSummary {
  let s = story.steps.get(id);
  if (!s) {
    s = newStep(id, action);
    story.steps.set(id, s);
  }
  return s;
}

function closeExec(story: RunStory, stepId: string, at: string, outcome: string): void {
  const span = story.open.exec.get(stepId);
  if (!span) return;
  span.end = at;
  span.outcome = outcome;
  span.label = `${stepId}: ${span.kind} attempt ${span.attempt ?? 1} ${outcome} (${formatDuration(ms(at) - ms(span.start))})`;
  story.open.exec.delete(stepId);
}

function finishStep(s: StepSummary, status: string, at: string, note: string | null): void {
  s.status = status;
  s.finishedAt = at;
  s.durationMs = s.startedAt ? ms(at) - ms(s.startedAt) : null;
  if (note !== null) s.note = note;
}

/** Fold one event (in chain order) into the story. */
export function applyEvent(story: RunStory, e: TimelineEvent): RunStory {
  story.events += 1;
  const defs = story.run.definition?.steps ?? [];
  switch (e.kind) {
    case 'step.started': {
      const s = stepOf(story, e.data.stepId, str(e.data.action));
      s.category = categorise(defs.find((d) => d.id === s.id) ?? { id: s.id, action: s.action }, e.data.params);
      s.status = 'running';
      s.attempts = Math.max(s.attempts, Number(e.data.attempt) || s.attempts + 1);
      s.startedAt ??= e.time;
      s.params ??= e.data.params;
      story.firstAction ??= { stepId: s.id, at: e.time };
      const span: TimelineSpan = { stepId: s.id, kind: s.category, start: e.time, end: null, outcome: 'running', attempt: Number(e.data.attempt) || 1, label: `${s.id}: ${s.category} attempt ${str(e.data.attempt)} running` };
      story.spans.push(span);
      story.open.exec.set(s.id, span);
      break;
    }
    case 'step.succeeded': {
      const s = stepOf(story, e.data.stepId);
      closeExec(story, s.id, e.time, 'succeeded');
      const attempt = Number(e.data.attempt) || s.attempts;
      finishStep(s, 'succeeded', e.time, attempt > 1 ? `succeeded on attempt ${attempt}; before: ${s.note ?? 'failed'}` : null);
      if (!story.mitigation && s.category === 'mitigation' && (s.impact === 'high' || !defs.some((x) => x.impact === 'high'))) {
        story.mitigation = { stepId: s.id, at: e.time, simulated: story.run.dry_run };
      }
      break;
    }
    case 'step.retrying': {
      const s = stepOf(story, e.data.stepId);
      closeExec(story, s.id, e.time, 'failed, retrying');
      s.status = 'retrying';
      s.note = `attempt ${str(e.data.attempt)} failed: ${errorMessage(e.data.error)}`;
      break;
    }
    case 'step.failed': {
      const s = stepOf(story, e.data.stepId);
      closeExec(story, s.id, e.time, 'failed');
      finishStep(s, 'failed', e.time, errorMessage(e.data.error));
      break;
    }
    case 'step.denied': {
      const s = stepOf(story, e.data.stepId);
      finishStep(s, 'denied', e.time, list(e.data.reasons).join('; ') || 'denied by policy');
      break;
    }
    case 'step.skipped': {
      const s = stepOf(story, e.data.stepId);
      s.skipped = true;
      s.skipReason = str(e.data.reason);
      if (e.data.when) s.when = str(e.data.when);
      finishStep(s, 'skipped', e.time, explain(e));
      break;
    }
    case 'step.would_call': {
      stepOf(story, e.data.stepId).wouldCalls.push({ reason: str(e.data.reason) || 'side_effect', request: e.data.request, ...(e.data.response !== undefined && { response: e.data.response }) });
      break;
    }
    case 'policy.decision': {
      const stepId = e.data.stepId;
      if (!stepId) break;
      const outcome = e.data.allow ? (e.data.requireApproval ? 'approval required' : 'allowed') : 'denied';
      const why = list(e.data.reasons).join('; ');
      story.spans.push({ stepId, kind: 'policy', start: e.time, end: e.time, outcome, label: `${stepId}: policy ${outcome}${why ? ` — ${why}` : ''}` });
      stepOf(story, stepId).decision ??= {
        allow: e.data.allow === true,
        requireApproval: e.data.requireApproval === true,
        approvers: list(e.data.approvers),
        minApprovals: Number(e.data.minApprovals ?? 0),
        reasons: list(e.data.reasons),
        ...(e.data.error !== undefined && { error: str(e.data.error) }),
      };
      break;
    }
    case 'approval.requested': {
      const id = str(e.data.approvalId);
      const stepId = str(e.data.stepId);
      const round = Number(e.data.round) || [...story.approvals.values()].filter((x) => x.stepId === stepId).length + 1;
      const timeoutMs = Number(e.data.timeoutMs);
      const a: ApprovalSummary = {
        id,
        stepId,
        round,
        action: str(e.data.action),
        params: e.data.params,
        requestedAt: e.time,
        expiresAt: Number.isFinite(timeoutMs) && timeoutMs > 0 ? new Date(ms(e.time) + timeoutMs).toISOString() : null,
        onTimeout: str(e.data.onTimeout) || 'abort',
        approvers: list(e.data.approvers),
        minApprovals: Number(e.data.minApprovals) || 1,
        reasons: list(e.data.reasons),
        status: 'pending',
        decidedBy: null,
        decidedAt: null,
        waitMs: 0,
        votes: [],
        refused: [],
      };
      story.approvals.set(id, a);
      const span: TimelineSpan = { stepId: a.stepId, kind: 'approval', start: e.time, end: null, outcome: 'pending', label: `${a.stepId}: waiting for approval from ${a.approvers.join(', ') || 'any approver'}` };
      story.spans.push(span);
      story.open.approval.set(id, span);
      if (a.stepId) {
        const s = stepOf(story, a.stepId);
        s.status = 'waiting';
        s.requested ??= e.data.params;
      }
      break;
    }
    case 'approval.escalated': {
      const a = story.approvals.get(str(e.data.approvalId));
      if (a) a.approvers = list(e.data.approvers);
      break;
    }
    case 'approval.vote':
    case 'approval.granted':
    case 'approval.rejected':
    case 'approval.expired':
    case 'approval.cancelled': {
      const a = story.approvals.get(str(e.data.approvalId));
      if (!a) break;
      if ('decision' in e.data && e.data.decision) a.votes.push({ actor: e.actor, decision: str(e.data.decision), at: e.time });
      if (e.kind === 'approval.cancelled') a.cancelReason = str(e.data.reason) || undefined;
      const status = DECIDED[e.kind];
      if (status && a.status === 'pending') {
        a.status = status;
        a.decidedBy = status === 'expired' ? null : e.actor;
        a.decidedAt = e.time;
        a.waitMs = ms(e.time) - ms(a.requestedAt);
        const span = story.open.approval.get(a.id);
        if (span) {
          span.end = e.time;
          span.outcome = status;
          span.label = `${a.stepId}: approval ${status}${a.decidedBy ? ` by ${a.decidedBy}` : ''} after ${formatDuration(a.waitMs)}`;
          story.open.approval.delete(a.id);
        }
        const s = a.stepId ? story.steps.get(a.stepId) : undefined;
        if (s && s.status === 'waiting') {
          if (status === 'approved') s.status = 'pending';
          else s.note = `approval ${status}${a.decidedBy ? ` by ${a.decidedBy}` : ''}`;
        }
      }
      break;
    }
    case 'approval.refused': {
      story.approvals.get(str(e.data.approvalId))?.refused.push({ actor: e.actor, reason: str(e.data.reason), at: e.time });
      break;
    }
    case 'compensation.started': {
      const s = stepOf(story, e.data.stepId);
      s.compensation = 'running';
      const span: TimelineSpan = { stepId: s.id, kind: 'compensation', start: e.time, end: null, outcome: 'running', label: `${s.id}: compensating (${str(e.data.action)})` };
      story.spans.push(span);
      story.open.comp.set(s.id, span);
      break;
    }
    case 'compensation.succeeded':
    case 'compensation.failed': {
      const s = stepOf(story, e.data.stepId);
      const ok = e.kind === 'compensation.succeeded';
      s.compensation = ok ? 'succeeded' : 'failed';
      if (e.kind === 'compensation.succeeded') {
        s.status = 'compensated';
        const wouldCall = (e.data.output as { wouldCall?: unknown } | null | undefined)?.wouldCall;
        if (wouldCall !== undefined) s.compensationWouldCall = wouldCall;
      } else {
        s.note = `compensation failed: ${errorMessage(e.data.error)}`;
        s.compensationError = errorMessage(e.data.error);
      }
      const span = story.open.comp.get(s.id);
      if (span) {
        span.end = e.time;
        span.outcome = ok ? 'succeeded' : 'failed';
        span.label = `${s.id}: compensation ${span.outcome} (${formatDuration(ms(e.time) - ms(span.start))})`;
        story.open.comp.delete(s.id);
      }
      break;
    }
    case 'run.succeeded':
    case 'run.failed':
    case 'run.aborted':
    case 'run.cancelled':
      story.end = { kind: e.kind, at: e.time, data: e.data };
      break;
    case 'run.created':
    case 'run.queued':
    case 'run.started':
    case 'run.abort_requested':
    case 'run.abort_allowed':
    case 'run.abort_refused':
    case 'alert.resolved':
    case 'step.resumed':
    case 'step.polled':
    case 'access.allowed':
    case 'access.denied':
    case 'token.created':
    case 'token.revoked':
    case 'session.started':
    case 'session.ended':
    case 'automation.paused':
    case 'automation.resumed':
    case 'breaker.tripped':
    case 'silence.created':
    case 'silence.expired':
    case 'repair.retried':
    case 'repair.cancelled':
    case 'run.held':
    case 'run.stuck':
      break;
    case 'run.retried':
      // The run goes on: it has not ended (yet).
      story.end = null;
      break;
    default:
      unhandledKind(e, undefined);
  }
  return story;
}

/** Fold a whole chain. */
export function storyOf(run: StoryRun, events: readonly TimelineEvent[]): RunStory {
  const story = createStory(run);
  for (const e of events) applyEvent(story, e);
  return story;
}

// ---------- the postmortem view ----------

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

/** Build the view from a run row and its (ordered) chain. Pure: no database, clock injected. */
export function viewFromEvents(run: StoryRun, events: TimelineEvent[], options: TimelineOptions = {}): TimelineView {
  const now = options.now ?? Date.now;
  const redact = options.redact ?? ((v: unknown) => v);
  const story = storyOf(run, events);
  const alert = (run.alert ?? null) as (TimelineView['run']['alert'] & Record<string, unknown>) | null;
  const alertStart = alert?.startsAt && !Number.isNaN(Date.parse(alert.startsAt)) ? alert.startsAt : undefined;
  const origin: TimelineOrigin = alertStart ? { kind: 'alert', time: new Date(alertStart).toISOString() } : { kind: 'run', time: run.created_at.toISOString() };
  const originMs = ms(origin.time);
  const finishedMs = run.finished_at?.getTime() ?? null;
  const endOfOpen = finishedMs ?? now();

  // A finished run closes whatever is still open at its end; pending steps were never reached.
  const endIso = run.finished_at?.toISOString() ?? null;
  for (const span of story.spans) {
    if (span.end === null && endIso) {
      span.end = endIso;
      span.outcome = span.kind === 'approval' ? 'cancelled' : 'interrupted';
    }
  }
  for (const a of story.approvals.values()) if (a.status === 'pending') a.waitMs = endOfOpen - ms(a.requestedAt);
  if (endIso) {
    for (const s of story.steps.values()) {
      if (s.status === 'pending' || s.status === 'waiting') {
        s.status = 'skipped';
        s.note ??= 'not reached';
      }
    }
  }

  const approvalWaitMs = [...story.approvals.values()].reduce((sum, a) => sum + Math.max(0, a.waitMs), 0);
  const durations: TimelineDurations = {
    alertToFirstActionMs: story.firstAction ? ms(story.firstAction.at) - originMs : null,
    alertToMitigationMs: story.mitigation ? ms(story.mitigation.at) - originMs : null,
    approvalWaitMs,
    totalMs: finishedMs !== null ? finishedMs - run.created_at.getTime() : null,
    alertToFinishMs: finishedMs !== null ? finishedMs - originMs : null,
    firstAction: story.firstAction,
    mitigation: story.mitigation,
  };

  const finalEvent = [...events].reverse().find(isRunEnd) as TimelineEvent | undefined;
  const finalReason = finalEvent && 'reason' in finalEvent.data && finalEvent.data.reason ? str(finalEvent.data.reason) : null;
  const reason = run.abort_reason ?? finalReason ?? (run.outcome?.reason ? str(run.outcome.reason) : null);

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
    steps: [...story.steps.values()],
    approvals: [...story.approvals.values()],
    spans: story.spans,
    events: events.map((e) => ({
      seq: e.seq,
      time: e.time,
      offsetMs: ms(e.time) - originMs,
      kind: e.kind,
      actor: e.actor,
      stepId: 'stepId' in e.data && typeof e.data.stepId === 'string' ? e.data.stepId : null,
      summary: summarise(e),
      why: explain(e),
      data: e.data as unknown as Record<string, unknown>,
      hash: e.hash,
    })),
    chain: { events: events.length, head: events.at(-1)?.hash ?? null },
    generatedAt: new Date(now()).toISOString(),
  };
  return redact(view) as TimelineView;
}
