/**
 * What a (dry) run did, step by step, read back from the API's run and
 * timeline JSON: taken or skipped, the policy decision and its reasons, each
 * "would call" with its rendered request. `firebreak replay` prints it and
 * diffs two of them. The per-step facts come from the shared view of the
 * timeline (src/timeline/view.ts); this module only selects and formats.
 */
import type { DecisionSummary, TimelineView, WouldCall } from '../timeline/index.js';

/** The parts of GET /api/runs/:id this needs. */
export interface RunJson {
  id: string;
  playbook: string;
  status: string;
  trigger: string;
  dryRun: boolean;
  startedBy: string | null;
  steps: Array<{ id: string; action: string; status: string; attempts: number; output?: unknown; error?: unknown }>;
  approvals: Array<{ id: string; stepId: string; status: string; approvers: string[]; minApprovals: number; decidedBy: string | null; round?: number }>;
  dryRunOptions?: unknown;
  abortReason?: string | null;
}

/** The parts of GET /api/runs/:id/timeline?format=json (the shared postmortem view) this needs. */
export interface TimelineJson {
  run: Pick<TimelineView['run'], 'reason' | 'alert'>;
  steps: TimelineView['steps'];
}

export type DecisionReport = DecisionSummary;
export type { WouldCall };

export type StepOutcome = 'taken' | 'failed' | 'skipped' | 'denied' | 'waiting for approval' | 'would ask approval' | 'running' | 'pending' | 'not reached';

export interface StepReport {
  id: string;
  action: string;
  status: string;
  outcome: StepOutcome;
  /** Skip reason, error, deny reasons. */
  note?: string;
  /** The `when:` of a skipped step. */
  when?: string;
  decision?: DecisionReport;
  /** Rendered params of the first attempt (secrets redacted). */
  params?: unknown;
  /** Rendered params the step asked approval for (what it would call once approved). */
  requested?: unknown;
  /** What a step that ran answered, in a few words (value=0.93, HTTP 200). */
  result?: string;
  wouldCalls: WouldCall[];
  approval?: { id: string; status: string; approvers: string[]; minApprovals: number; decidedBy: string | null };
  compensation?: { status: string; wouldCall?: unknown; error?: string };
}

export interface RunReport {
  id: string;
  playbook: string;
  status: string;
  dryRun: boolean;
  trigger: string;
  settled: boolean;
  reason: string | null;
  alert: { summary?: string; fingerprint?: string; source?: string } | null;
  /** What the run's playbook saw of the secrets, when they were withheld (playbooks sent with the request). */
  secrets?: string;
  steps: StepReport[];
  pendingApprovals: Array<{ id: string; stepId: string; approvers: string[]; minApprovals: number }>;
}

const FINISHED = new Set(['succeeded', 'failed', 'aborted', 'cancelled']);

/** Finished, or parked on an approval someone has to answer. */
export function isSettled(run: Pick<RunJson, 'status' | 'approvals'>): boolean {
  return FINISHED.has(run.status) || (run.status === 'waiting' && run.approvals.some((a) => a.status === 'pending'));
}

const str = (v: unknown): string => (v === undefined || v === null ? '' : String(v));
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

/**
 * A run's report: its steps as the API reports them (status, output), with
 * what the shared view rebuilt from the timeline for each (the decision, the
 * rendered request, would-calls, skip reason, compensation).
 */
export function buildReport(run: RunJson, timeline: TimelineJson): RunReport {
  const viewed = new Map((timeline.steps ?? []).map((s) => [s.id, s]));
  const steps = new Map<string, StepReport>();
  for (const s of run.steps) {
    const v = viewed.get(s.id);
    const result = resultOf(s.output);
    const note = s.status === 'skipped' ? v?.skipReason : s.status === 'denied' ? v?.decision?.reasons.join('; ') : s.status === 'failed' ? (v?.note ?? undefined) : undefined;
    const compensation = v?.compensation === 'succeeded' || v?.compensation === 'failed'
      ? { status: v.compensation, ...(v.compensationWouldCall !== undefined && { wouldCall: v.compensationWouldCall }), ...(v.compensationError !== undefined && { error: v.compensationError }) }
      : undefined;
    steps.set(s.id, {
      id: s.id,
      action: s.action,
      status: s.status,
      outcome: 'pending',
      wouldCalls: v?.wouldCalls ?? [],
      ...(result && { result }),
      ...(note !== undefined && { note }),
      ...(v?.when !== undefined && { when: v.when }),
      ...(v?.decision && { decision: v.decision }),
      ...(v?.params !== undefined && { params: v.params }),
      ...(v?.requested !== undefined && { requested: v.requested }),
      ...(compensation && { compensation }),
    });
  }
  const pendingApprovals: RunReport['pendingApprovals'] = [];
  for (const a of run.approvals) {
    const step = steps.get(a.stepId);
    if (step) step.approval = { id: a.id, status: a.status, approvers: a.approvers, minApprovals: a.minApprovals, decidedBy: a.decidedBy };
    if (a.status === 'pending') pendingApprovals.push({ id: a.id, stepId: a.stepId, approvers: a.approvers, minApprovals: a.minApprovals });
  }
  for (const step of steps.values()) step.outcome = outcomeOf(step, viewed.get(step.id)?.skipped ?? false);
  return {
    id: run.id,
    playbook: run.playbook,
    status: run.status,
    dryRun: run.dryRun,
    trigger: run.trigger,
    settled: isSettled(run),
    reason: timeline.run.reason ?? run.abortReason ?? null,
    alert: timeline.run.alert ? { summary: timeline.run.alert.summary, fingerprint: timeline.run.alert.fingerprint, source: timeline.run.alert.source } : null,
    ...(typeof (run.dryRunOptions as { secrets?: unknown } | undefined)?.secrets === 'string' && { secrets: (run.dryRunOptions as { secrets: string }).secrets }),
    steps: [...steps.values()],
    pendingApprovals,
  };
}

/** A few words about a step's output: a Prometheus value, an HTTP status, an exit code. */
function resultOf(output: unknown): string | undefined {
  if (!output || typeof output !== 'object') return undefined;
  const o = output as Record<string, unknown>;
  const stub = o.dryRun === true ? ' (stub)' : '';
  if ('resultType' in o && 'value' in o) return `value=${JSON.stringify(o.value)}${stub}`;
  if ('exitCode' in o) return `exit ${str(o.exitCode)}${stub}`;
  if (typeof o.status === 'number') return `HTTP ${o.status}${stub}`;
  return undefined;
}

function outcomeOf(step: StepReport, skipEvent: boolean): StepOutcome {
  switch (step.status) {
    case 'succeeded':
    case 'compensated':
      return 'taken';
    case 'failed':
      return 'failed';
    case 'denied':
      return 'denied';
    case 'skipped':
      if (skipEvent) return 'skipped';
      // A scripted dry run (replay, test) that reached an approval nobody scripted stopped there.
      return step.approval?.status === 'cancelled' && step.approval.decidedBy === 'replay' ? 'would ask approval' : 'not reached';
    case 'running':
      return 'running';
    default:
      return step.approval?.status === 'pending' ? 'waiting for approval' : 'pending';
  }
}

// ---------- text ----------

function headerLines(headers: unknown): string[] {
  if (!headers || typeof headers !== 'object') return [];
  return Object.entries(headers as Record<string, unknown>).map(([k, v]) => `${k}: ${str(v)}`);
}

/** A rendered request as a person reads it: method and URL, headers, body; a script and its argv; a Slack post. */
export function formatRequest(request: unknown): string[] {
  if (!request || typeof request !== 'object') return [JSON.stringify(request)];
  const r = request as Record<string, unknown>;
  if (typeof r.url === 'string') {
    const lines = [`${str(r.method) || 'GET'} ${r.url}`, ...headerLines(r.headers).map((h) => `  ${h}`)];
    if (r.body !== undefined && r.body !== null && r.body !== '') lines.push(`  body: ${typeof r.body === 'string' ? r.body : JSON.stringify(r.body)}`);
    if (typeof r.until === 'string') lines.push(`  until: ${r.until}`);
    return lines;
  }
  if (typeof r.script === 'string') {
    const lines = [`exec ${[r.script, ...strings(r.args)].join(' ')}`];
    const env = strings(r.env);
    if (env.length > 0) lines.push(`  env: ${env.join(', ')}`);
    return lines;
  }
  if (typeof r.text === 'string') {
    return [`slack message to ${str(r.channel) || 'the run\'s channel'}:`, ...r.text.trimEnd().split('\n').map((l) => `  | ${l}`)];
  }
  return [JSON.stringify(request)];
}

export function formatDecision(d: DecisionReport | undefined): string {
  if (!d) return 'no decision';
  const verdict = !d.allow ? 'DENIED' : d.requireApproval ? `allowed with approval (${d.approvers.join(', ') || 'any approver'}; ${d.minApprovals} needed)` : 'allowed';
  return `${verdict}${d.reasons.length > 0 ? ` — ${d.reasons.join('; ')}` : ''}`;
}

function pad(text: string, width: number): string {
  return text.length >= width ? `${text} ` : text.padEnd(width);
}

/** The report as text: one block per run. */
export function formatReport(report: RunReport): string {
  const lines: string[] = [];
  const alert = report.alert ? ` on alert "${report.alert.summary ?? ''}" (${report.alert.source ?? '?'} ${report.alert.fingerprint ?? ''})` : '';
  lines.push(`${report.dryRun ? '[DRY RUN] ' : ''}${report.playbook}  run ${report.id}${alert}`);
  let status = `  status: ${report.status}`;
  if (report.pendingApprovals.length > 0) status += ' — waiting for approval';
  else if (!report.settled) status += ' — still running';
  else if (report.reason && report.status !== 'succeeded') status += ` — ${report.reason}`;
  lines.push(status);
  if (report.secrets) lines.push(`  secrets: ${report.secrets}`);
  for (const a of report.pendingApprovals) {
    lines.push(`  approval ${a.id} for step ${a.stepId} is pending (approvers: ${a.approvers.join(', ') || 'any'}; ${a.minApprovals} needed)`);
    lines.push(`    answer it: firebreak approve ${a.id}   (or reject; as FIREBREAK_TOKEN, or --as <name> in local mode)`);
  }
  const idWidth = Math.min(24, Math.max(4, ...report.steps.map((s) => s.id.length)) + 2);
  const actionWidth = Math.min(20, Math.max(6, ...report.steps.map((s) => s.action.length)) + 2);
  report.steps.forEach((s, i) => {
    lines.push(`  ${String(i + 1).padStart(2)}. ${pad(s.id, idWidth)}${pad(s.action, actionWidth)}${s.outcome}${s.result && s.outcome !== 'skipped' ? ` → ${s.result}` : ''}`);
    if (s.decision) lines.push(`        policy: ${formatDecision(s.decision)}`);
    if (s.outcome === 'skipped') lines.push(`        skipped: ${s.note || 'condition is false'}${s.when ? ` (when: ${s.when})` : ''}`);
    else if (s.note && (s.outcome === 'failed' || s.outcome === 'denied')) lines.push(`        ${s.outcome}: ${s.note}`);
    if (s.approval && s.approval.status !== 'pending') lines.push(`        approval ${s.approval.id}: ${s.approval.status}${s.approval.decidedBy ? ` by ${s.approval.decidedBy}` : ''}`);
    for (const w of s.wouldCalls) {
      const [first, ...rest] = formatRequest(w.request);
      lines.push(`        would call${w.reason === 'gather' ? ' (gather, --no-gather)' : ''}: ${first}`);
      for (const l of rest) lines.push(`          ${l}`);
    }
    if (s.outcome === 'would ask approval') lines.push(`        would ask approval of ${s.approval?.approvers.join(', ') || 'any approver'}: nobody scripted an answer, so the dry run stopped here`);
    if ((s.outcome === 'waiting for approval' || s.outcome === 'would ask approval') && s.requested !== undefined) {
      const [first, ...rest] = formatRequest(s.requested);
      lines.push(`        if approved, would call: ${first}`);
      for (const l of rest) lines.push(`          ${l}`);
    }
    if (s.compensation) {
      if (s.compensation.wouldCall !== undefined) {
        const [first, ...rest] = formatRequest(s.compensation.wouldCall);
        lines.push(`        compensation would call: ${first}`);
        for (const l of rest) lines.push(`          ${l}`);
      } else {
        lines.push(`        compensation ${s.compensation.status}${s.compensation.error ? `: ${s.compensation.error}` : ''}`);
      }
    }
  });
  return lines.join('\n');
}
