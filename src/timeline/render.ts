/**
 * The postmortem view of a run: events in UTC with who/what/why, and the
 * durations reviewers ask for. JSON for tools, Markdown to paste into a doc.
 */
import { NotFoundError } from '../errors.js';
import type { Queryable } from '../store/index.js';
import { readChain, type TimelineEvent } from './chain.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const RUN_FOR_TIMELINE = `
  select id, playbook, status, trigger, started_by, dry_run, alert, definition, created_at, started_at, finished_at
  from runs where id = $1::uuid`;

export interface TimelineDurations {
  /** From the alert's startsAt (or run creation) to the first step started. */
  alertToFirstActionMs: number | null;
  /** To the first successful high-impact step. */
  alertToMitigationMs: number | null;
  /** Total time spent waiting for approvals. */
  approvalWaitMs: number;
  /** Run created to run finished (or now, while running). */
  totalMs: number | null;
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
    finishedAt: string | null;
    alert: { summary?: string; severity?: string; startsAt?: string; fingerprint?: string; source?: string } | null;
  };
  durations: TimelineDurations;
  events: Array<{ seq: number; time: string; kind: string; actor: string; summary: string; data: Record<string, unknown>; hash: string }>;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v));

/** One line saying what happened and why. */
export function summarise(e: TimelineEvent): string {
  const d = e.data;
  const step = d.stepId ? `step ${str(d.stepId)}` : '';
  switch (e.kind) {
    case 'run.created':
      return `run created (${str(d.trigger)}) for playbook ${str(d.playbook)}${d.dryRun ? ' — DRY RUN' : ''}`;
    case 'run.started':
      return 'run started';
    case 'run.queued':
      return `queued: concurrency limit ${str(d.limit)} reached for ${str(d.concurrencyKey)}`;
    case 'policy.decision':
      return `policy on ${step}: ${d.allow ? (d.requireApproval ? 'allowed with approval' : 'allowed') : 'DENIED'}${Array.isArray(d.reasons) && d.reasons.length ? ` — ${d.reasons.join('; ')}` : ''}`;
    case 'approval.requested':
      return `approval requested for ${step} (${str(d.action)}) from ${Array.isArray(d.approvers) && d.approvers.length ? d.approvers.join(', ') : 'any approver'}`;
    case 'approval.granted':
      return `approved ${step}`;
    case 'approval.rejected':
      return `rejected ${step}`;
    case 'approval.refused':
      return `refused answer on ${step}: ${str(d.reason)}`;
    case 'approval.expired':
      return `approval for ${step} expired (on_timeout: ${str(d.onTimeout)})`;
    case 'step.started':
      return `${step} started (${str(d.action)}, attempt ${str(d.attempt)})`;
    case 'step.succeeded':
      return `${step} succeeded after ${str(d.durationMs)} ms`;
    case 'step.failed':
      return `${step} failed: ${str((d.error as { message?: string } | undefined)?.message)}`;
    case 'step.retrying':
      return `${step} attempt ${str(d.attempt)} failed (${str((d.error as { message?: string } | undefined)?.message)}); retrying at ${str(d.nextAttemptAt)}`;
    case 'step.skipped':
      return `${step} skipped: ${str(d.reason)}${d.when ? ` (when: ${str(d.when)})` : ''}`;
    case 'step.denied':
      return `${step} denied by policy`;
    case 'step.would_call':
      return `${step} DRY RUN would call ${str((d.request as { method?: string })?.method ?? '')} ${str((d.request as { url?: string; script?: string })?.url ?? (d.request as { script?: string })?.script ?? '')}`.trim();
    case 'compensation.started':
      return `compensating ${step} (${str(d.action)})`;
    case 'compensation.succeeded':
      return `compensated ${step}`;
    case 'compensation.failed':
      return `compensation of ${step} failed`;
    case 'alert.resolved':
      return 'alert resolved';
    default:
      if (e.kind.startsWith('run.')) return `run ${e.kind.slice(4)}${d.reason ? `: ${str(d.reason)}` : ''}`;
      return `${e.kind}${step ? ` ${step}` : ''}`;
  }
}

function durations(events: TimelineEvent[], alertStart: string | undefined, createdAt: Date, finishedAt: Date | null, highImpactSteps: Set<string>): TimelineDurations {
  const origin = alertStart ? Date.parse(alertStart) : createdAt.getTime();
  const at = (e: TimelineEvent | undefined) => (e ? Date.parse(e.time) : undefined);
  const firstAction = at(events.find((e) => e.kind === 'step.started'));
  const mitigation = at(events.find((e) => e.kind === 'step.succeeded' && highImpactSteps.has(String(e.data.stepId))));
  let approvalWaitMs = 0;
  const open = new Map<string, number>();
  for (const e of events) {
    const id = String(e.data.approvalId ?? '');
    if (e.kind === 'approval.requested') open.set(id, Date.parse(e.time));
    else if (['approval.granted', 'approval.rejected', 'approval.expired', 'approval.cancelled'].includes(e.kind) && open.has(id)) {
      approvalWaitMs += Date.parse(e.time) - open.get(id)!;
      open.delete(id);
    }
  }
  const end = finishedAt?.getTime() ?? Date.now();
  for (const start of open.values()) approvalWaitMs += end - start;
  return {
    alertToFirstActionMs: firstAction !== undefined ? firstAction - origin : null,
    alertToMitigationMs: mitigation !== undefined ? mitigation - origin : null,
    approvalWaitMs,
    totalMs: finishedAt ? finishedAt.getTime() - createdAt.getTime() : null,
  };
}

export async function buildTimelineView(db: Queryable, runId: string): Promise<TimelineView> {
  if (!UUID.test(runId)) throw new NotFoundError(`run ${runId} not found`);
  const { rows } = await db.query(RUN_FOR_TIMELINE, [runId]);
  const run = rows[0];
  if (!run) throw new NotFoundError(`run ${runId} not found`);
  const events = await readChain(db, runId);
  const high = new Set<string>((run.definition?.steps ?? []).filter((s: { impact?: string }) => s.impact === 'high').map((s: { id: string }) => s.id));
  const alert = run.alert as TimelineView['run']['alert'];
  return {
    run: {
      id: run.id,
      playbook: run.playbook,
      status: run.status,
      trigger: run.trigger,
      startedBy: run.started_by,
      dryRun: run.dry_run,
      createdAt: run.created_at.toISOString(),
      finishedAt: run.finished_at?.toISOString() ?? null,
      alert: alert ? { summary: alert.summary, severity: alert.severity, startsAt: alert.startsAt, fingerprint: alert.fingerprint, source: alert.source } : null,
    },
    durations: durations(events, alert?.startsAt, run.created_at, run.finished_at, high),
    events: events.map((e) => ({ seq: e.seq, time: e.time, kind: e.kind, actor: e.actor, summary: summarise(e), data: e.data, hash: e.hash })),
  };
}

export function formatDuration(ms: number | null): string {
  if (ms === null) return '—';
  if (ms < 1_000) return `${ms} ms`;
  const s = Math.round(ms / 1_000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function timelineMarkdown(view: TimelineView): string {
  const r = view.run;
  const lines = [
    `# Run ${r.id}${r.dryRun ? ' (DRY RUN — nothing was sent)' : ''}`,
    '',
    `- **Playbook:** ${r.playbook}`,
    `- **Status:** ${r.status}`,
    `- **Trigger:** ${r.trigger}${r.startedBy ? ` by ${r.startedBy}` : ''}`,
    ...(r.alert ? [`- **Alert:** ${r.alert.summary ?? ''} (severity ${r.alert.severity || 'unknown'}, ${r.alert.source ?? ''} ${r.alert.fingerprint ?? ''}, started ${r.alert.startsAt ?? ''})`] : []),
    `- **Created:** ${r.createdAt} (UTC)`,
    `- **Finished:** ${r.finishedAt ?? 'not yet'}`,
    '',
    '## Durations',
    '',
    '| measure | value |',
    '|---|---|',
    `| alert → first action | ${formatDuration(view.durations.alertToFirstActionMs)} |`,
    `| alert → mitigation | ${formatDuration(view.durations.alertToMitigationMs)} |`,
    `| waiting for approvals | ${formatDuration(view.durations.approvalWaitMs)} |`,
    `| total | ${formatDuration(view.durations.totalMs)} |`,
    '',
    '## Timeline (UTC)',
    '',
    '| time | who | what |',
    '|---|---|---|',
    ...view.events.map((e) => `| ${e.time.replace('T', ' ').replace('Z', '')} | ${cell(e.actor)} | ${cell(e.summary)} |`),
    '',
    `Hash chain head: \`${view.events.at(-1)?.hash ?? 'none'}\` — verify with \`firebreak audit verify ${r.id}\`.`,
    '',
  ];
  return lines.join('\n');
}

export async function renderTimeline(db: Queryable, runId: string, format: 'json' | 'md'): Promise<TimelineView | string> {
  const view = await buildTimelineView(db, runId);
  return format === 'md' ? timelineMarkdown(view) : view;
}
