/**
 * Where two dry runs of the same alert diverge (`firebreak replay --diff`):
 * a step taken in one and skipped in the other, a different policy decision,
 * a different rendered request (a changed URL, body, script argument).
 */
import { formatDecision, formatRequest, type DecisionReport, type RunReport, type StepReport } from './report.js';

export interface Divergence {
  stepId: string | null;
  kind: 'steps' | 'outcome' | 'decision' | 'request' | 'status';
  a: string;
  b: string;
}

/**
 * A request without what differs between any two runs: the run id (in
 * bodies, idempotency keys), the Idempotency-Key header, and how a secret
 * is hidden (withheld from a sent playbook, redacted from the server's).
 */
// A sent playbook's withheld secret (as is, or percent-encoded in a URL) and the server's redacted one are the same secret.
const WITHHELD = /(?:\[|%5B)withheld(?: |%20)secret(?: |%20)[A-Za-z0-9_]+(?:\]|%5D)/gi;

function normalised(request: unknown, runId: string): string {
  const strip = (v: unknown): unknown => {
    if (typeof v === 'string') return v.split(runId).join('<run>').replace(WITHHELD, '[redacted]');
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (k.toLowerCase() === 'idempotency-key') continue;
        out[k] = strip(x);
      }
      return out;
    }
    return v;
  };
  return JSON.stringify(strip(request));
}

/**
 * How two runs are compared: two dry runs of one alert (`replay --diff`), or a
 * recorded run against its replay (`replay --since`), where the recorded side
 * made real calls (no would-calls) and the replay stops where the recorded run
 * still waits for an answer.
 */
export type DiffMode = 'dry' | 'recorded';

function requestsOf(step: StepReport, mode: DiffMode): unknown[] {
  // A recorded run has only its rendered inputs (step.started, or what an approval was asked for).
  if (mode === 'recorded') return step.params !== undefined ? [step.params] : step.requested !== undefined ? [step.requested] : [];
  // What the step would send (dry-run stubs) or sent (a gather step that ran).
  if (step.wouldCalls.length > 0) return step.wouldCalls.map((w) => w.request);
  return step.params !== undefined ? [step.params] : [];
}

/** A step's outcome as compared: waiting for an answer and stopping at an unanswered approval are the same place. */
function comparable(s: StepReport, mode: DiffMode): string {
  if (mode === 'dry') return s.outcome;
  if (s.outcome === 'waiting for approval' || s.outcome === 'would ask approval') return 'stops at its approval';
  if (s.outcome === 'pending') return 'not reached';
  return s.outcome;
}

/** Where a run ended, as compared: a recorded run waiting for an answer ends where its replay stops. */
function endOf(r: RunReport, mode: DiffMode): string {
  if (mode === 'recorded') {
    const stop = r.steps.find((s) => s.outcome === 'waiting for approval' || s.outcome === 'would ask approval');
    if (stop) return `stops at the approval of step ${stop.id}`;
  }
  return r.status;
}

function sameDecision(a: DecisionReport | undefined, b: DecisionReport | undefined): boolean {
  if (!a || !b) return a === b;
  return a.allow === b.allow && a.requireApproval === b.requireApproval && a.minApprovals === b.minApprovals && a.approvers.join() === b.approvers.join() && a.reasons.join('\n') === b.reasons.join('\n');
}

function outcomeText(s: StepReport, mode: DiffMode = 'dry'): string {
  if (s.outcome === 'skipped') return `skipped${s.when ? ` (when: ${s.when})` : s.note ? ` (${s.note})` : ''}`;
  if ((s.outcome === 'denied' || s.outcome === 'failed') && s.note) return `${s.outcome} (${s.note})`;
  if (s.outcome === 'would ask approval' && s.approval) return `would ask approval of ${s.approval.approvers.join(', ') || 'any approver'} (no recorded answer: the replay stops here)`;
  return mode === 'recorded' && s.outcome === 'pending' ? 'not reached' : s.outcome;
}

function requestText(requests: unknown[], runId: string): string {
  if (requests.length === 0) return '(none)';
  return requests.map((r) => formatRequest(JSON.parse(normalised(r, runId))).join('\n')).join('\n');
}

/** Divergences between run `a` and run `b` of the same playbook on the same alert, in step order (mode: see DiffMode). */
export function diffRuns(a: RunReport, b: RunReport, mode: DiffMode = 'dry'): Divergence[] {
  const out: Divergence[] = [];
  const bSteps = new Map(b.steps.map((s) => [s.id, s]));
  const aIds = new Set(a.steps.map((s) => s.id));
  for (const sa of a.steps) {
    // A recorded run still in flight is compared as far as it got.
    if (mode === 'recorded' && !a.settled && (sa.outcome === 'pending' || sa.outcome === 'running')) continue;
    const sb = bSteps.get(sa.id);
    if (!sb) {
      out.push({ stepId: sa.id, kind: 'steps', a: `${sa.action}, ${outcomeText(sa, mode)}`, b: '(no such step)' });
      continue;
    }
    if (sa.action !== sb.action) out.push({ stepId: sa.id, kind: 'steps', a: `action ${sa.action}`, b: `action ${sb.action}` });
    const outcomeDiffers = comparable(sa, mode) !== comparable(sb, mode) || (sa.outcome === 'skipped' && (sa.when ?? '') !== (sb.when ?? ''));
    if (outcomeDiffers) out.push({ stepId: sa.id, kind: 'outcome', a: outcomeText(sa, mode), b: outcomeText(sb, mode) });
    // A step one run never asked about (skipped, not reached) already shows up as an outcome difference.
    const bothDecided = sa.decision !== undefined && sb.decision !== undefined;
    if ((bothDecided || !outcomeDiffers) && !sameDecision(sa.decision, sb.decision)) {
      out.push({ stepId: sa.id, kind: 'decision', a: formatDecision(sa.decision), b: formatDecision(sb.decision) });
    }
    const ra = requestsOf(sa, mode).map((r) => normalised(r, a.id));
    const rb = requestsOf(sb, mode).map((r) => normalised(r, b.id));
    // Compare requests only where both got as far as rendering them.
    if (ra.length > 0 && rb.length > 0 && ra.join('\n') !== rb.join('\n')) {
      out.push({ stepId: sa.id, kind: 'request', a: requestText(requestsOf(sa, mode), a.id), b: requestText(requestsOf(sb, mode), b.id) });
    }
  }
  for (const sb of b.steps) {
    if (!aIds.has(sb.id)) out.push({ stepId: sb.id, kind: 'steps', a: '(no such step)', b: `${sb.action}, ${outcomeText(sb, mode)}` });
  }
  // A recorded run still in flight has no end to compare yet.
  const unfinished = mode === 'recorded' && !a.settled;
  if (!unfinished && endOf(a, mode) !== endOf(b, mode)) out.push({ stepId: null, kind: 'status', a: endOf(a, mode), b: endOf(b, mode) });
  return out;
}

const LABEL: Record<Divergence['kind'], string> = {
  steps: 'step',
  outcome: 'taken/skipped',
  decision: 'policy decision',
  request: 'rendered request',
  status: 'run status',
};

function side(tag: string, text: string): string[] {
  const [first, ...rest] = text.split('\n');
  return [`      ${tag} ${first}`, ...rest.map((l) => `        ${l}`)];
}

/** `tags`: how the two sides are named (A/B for two folders; then/now for a recorded run and its replay). */
export function formatDivergences(divergences: Divergence[], tags: [string, string] = ['A:', 'B:']): string {
  if (divergences.length === 0) return '    no divergence: same steps taken, same decisions, same rendered requests';
  const lines: string[] = [];
  for (const d of divergences) {
    lines.push(`    ${d.stepId ? `step ${d.stepId}: ` : ''}${LABEL[d.kind]} differs`);
    lines.push(...side(tags[0], d.a), ...side(tags[1], d.b));
  }
  return lines.join('\n');
}
