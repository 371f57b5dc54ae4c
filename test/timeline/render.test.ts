/** The postmortem view as a pure function of a run row and its chain (no database). */
import { describe, expect, it } from 'vitest';
import { formatDuration, formatOffset, mdCell, timelineMarkdown, viewFromEvents, type TimelineEvent } from '../../src/timeline/index.js';

const T0 = Date.parse('2025-03-01T14:00:00.000Z');
const iso = (offsetMs: number) => new Date(T0 + offsetMs).toISOString();
const RUN_ID = '11111111-2222-4333-8444-555555555555';

function chain(entries: Array<[number, string, string, Record<string, unknown>]>): TimelineEvent[] {
  return entries.map(([offset, kind, actor, data], i) => ({ id: i + 1, chainId: RUN_ID, seq: i + 1, runId: RUN_ID, time: iso(offset), kind, actor, data, prevHash: '0'.repeat(64), hash: `${i}`.padStart(64, 'a') }));
}

function runRow(overrides: Record<string, unknown> = {}) {
  return {
    id: RUN_ID,
    playbook: 'high-error-rate',
    status: 'succeeded',
    trigger: 'alert',
    started_by: null,
    dry_run: false,
    alert: { source: 'alertmanager', fingerprint: 'abc', startsAt: iso(0), summary: 'Error rate | high <script>alert(1)</script>', severity: 'critical', labels: { service: 'checkout' } },
    definition: { steps: [{ id: 'error_rate', action: 'prometheus.query' }, { id: 'rollback', action: 'http.request', impact: 'high' }, { id: 'verify', action: 'note' }] },
    created_at: new Date(T0 + 10_000),
    started_at: new Date(T0 + 10_500),
    finished_at: new Date(T0 + 79_000),
    abort_reason: null,
    outcome: { reason: 'all steps done' },
    ...overrides,
  };
}

const APPROVAL = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
const fullRun = chain([
  [10_000, 'run.created', 'system', { playbook: 'high-error-rate', trigger: 'alert' }],
  [10_500, 'run.started', 'system', {}],
  [10_900, 'policy.decision', 'policy', { stepId: 'error_rate', allow: true, requireApproval: false, reasons: ['low-impact step'] }],
  [11_000, 'step.started', 'system', { stepId: 'error_rate', action: 'prometheus.query', attempt: 1 }],
  [12_000, 'step.succeeded', 'system', { stepId: 'error_rate', attempt: 1, durationMs: 1000 }],
  [12_900, 'policy.decision', 'policy', { stepId: 'rollback', allow: true, requireApproval: true, approvers: ['group:sre'], reasons: ['high-impact step: needs 1 approval'] }],
  [13_000, 'approval.requested', 'policy', { approvalId: APPROVAL, stepId: 'rollback', action: 'http.request', approvers: ['group:sre'], minApprovals: 1, reasons: ['high-impact step: needs 1 approval'] }],
  [40_000, 'approval.refused', 'console:carol', { approvalId: APPROVAL, stepId: 'rollback', decision: 'approve', reason: 'console:carol is not an approver' }],
  [73_000, 'approval.granted', 'console:alice', { approvalId: APPROVAL, stepId: 'rollback', decision: 'approve', approvals: 1, minApprovals: 1, reason: 'console:alice may approve as group:sre' }],
  [74_000, 'step.started', 'system', { stepId: 'rollback', action: 'http.request', attempt: 1, params: { method: 'POST' } }],
  [75_000, 'step.retrying', 'system', { stepId: 'rollback', attempt: 1, nextAttempt: 2, nextAttemptAt: iso(77_000), error: { message: 'POST answered 503' } }],
  [77_000, 'step.started', 'system', { stepId: 'rollback', action: 'http.request', attempt: 2, params: { method: 'POST' } }],
  [78_000, 'step.succeeded', 'system', { stepId: 'rollback', attempt: 2, durationMs: 4000 }],
  [78_500, 'step.skipped', 'system', { stepId: 'verify', reason: 'condition is false', when: 'steps.error_rate.output.value > 0.05' }],
  [79_000, 'run.succeeded', 'system', { reason: 'all steps done' }],
]);

describe('viewFromEvents', () => {
  const view = viewFromEvents(runRow() as never, fullRun, { now: () => T0 + 999_000 });

  it('measures from the alert', () => {
    expect(view.origin).toEqual({ kind: 'alert', time: iso(0) });
    expect(view.durations).toEqual({
      alertToFirstActionMs: 11_000,
      alertToMitigationMs: 78_000,
      approvalWaitMs: 60_000,
      totalMs: 69_000,
      alertToFinishMs: 79_000,
      firstAction: { stepId: 'error_rate', at: iso(11_000) },
      mitigation: { stepId: 'rollback', at: iso(78_000), simulated: false },
    });
    expect(view.events.map((e) => e.offsetMs)).toEqual(fullRun.map((e) => Date.parse(e.time) - T0));
  });

  it('summarises steps and approvals, with who and why', () => {
    expect(view.steps.map((s) => [s.id, s.status, s.attempts, s.category, s.durationMs])).toEqual([
      ['error_rate', 'succeeded', 1, 'gather', 1_000],
      ['rollback', 'succeeded', 2, 'mitigation', 4_000],
      ['verify', 'skipped', 0, 'gather', null],
    ]);
    expect(view.steps[1]!.note).toBe('succeeded on attempt 2; before: attempt 1 failed: POST answered 503');
    expect(view.steps[2]!.note).toBe('condition is false — when: steps.error_rate.output.value > 0.05');
    expect(view.approvals).toEqual([
      expect.objectContaining({ id: APPROVAL, stepId: 'rollback', status: 'approved', decidedBy: 'console:alice', decidedAt: iso(73_000), waitMs: 60_000, refused: [{ actor: 'console:carol', reason: 'console:carol is not an approver', at: iso(40_000) }] }),
    ]);
    const why = Object.fromEntries(view.events.map((e) => [e.kind, e.why]));
    expect(why['approval.granted']).toBe('console:alice may approve as group:sre');
    expect(why['step.retrying']).toBe('POST answered 503');
    expect(view.events.find((e) => e.kind === 'step.retrying')!.summary).toBe('step rollback attempt 1 failed; attempt 2 in 2.0s');
  });

  it('gives the console spans in five kinds', () => {
    expect(view.spans.map((s) => [s.stepId, s.kind, s.outcome, s.end !== null])).toEqual([
      ['error_rate', 'policy', 'allowed', true],
      ['error_rate', 'gather', 'succeeded', true],
      ['rollback', 'policy', 'approval required', true],
      ['rollback', 'approval', 'approved', true],
      ['rollback', 'mitigation', 'failed, retrying', true],
      ['rollback', 'mitigation', 'succeeded', true],
    ]);
  });

  it('counts an open approval up to now while the run waits', () => {
    const open = viewFromEvents(runRow({ status: 'waiting', finished_at: null }) as never, fullRun.slice(0, 8), { now: () => T0 + 100_000 });
    expect(open.durations.approvalWaitMs).toBe(87_000);
    expect(open.durations.totalMs).toBeNull();
    expect(open.durations.alertToMitigationMs).toBeNull();
    expect(open.approvals[0]).toMatchObject({ status: 'pending', decidedBy: null });
    expect(open.steps.find((s) => s.id === 'rollback')!.status).toBe('waiting');
    expect(open.spans.find((s) => s.kind === 'approval')!.end).toBeNull();
    expect(timelineMarkdown(open)).toContain('| Run finished | still active |');
  });

  it('applies the redactor to everything it returns', () => {
    const redacted = viewFromEvents(runRow() as never, fullRun, { redact: (v) => JSON.parse(JSON.stringify(v).replaceAll('checkout', '[redacted]')) });
    expect(JSON.stringify(redacted)).not.toContain('checkout');
  });
});

describe('timelineMarkdown', () => {
  it('escapes what could break a table or become HTML', () => {
    const md = timelineMarkdown(viewFromEvents(runRow() as never, fullRun));
    expect(md).toContain('Error rate \\| high \\<script\\>alert(1)\\</script\\>');
    expect(md).not.toMatch(/<script>/);
    expect(mdCell('a|b\nc *d* [x](y) snake_case _em_')).toBe('a\\|b c \\*d\\* \\[x\\](y) snake_case \\_em\\_');
  });

  it('marks a dry run in the title, a banner and the simulated durations', () => {
    const md = timelineMarkdown(viewFromEvents(runRow({ dry_run: true }) as never, fullRun));
    expect(md.split('\n')[0]).toBe('# Timeline: high-error-rate run `11111111` — DRY RUN');
    expect(md).toContain('> **DRY RUN — nothing was changed.**');
    expect(md).toContain('| Alert → mitigation (simulated) | 1m 18s |');
  });

  it('measures from run creation when there is no alert', () => {
    const md = timelineMarkdown(viewFromEvents(runRow({ alert: null, trigger: 'manual', started_by: 'api:bob' }) as never, fullRun));
    expect(md).toContain('| Run created → first action | 1.0s |');
    expect(md).toContain('| Trigger | manual by api:bob |');
    expect(md).toContain('T+ is the time since the run was created (no alert)');
  });
});

describe('formatting', () => {
  it('durations and offsets', () => {
    expect([0, 999, 1_000, 9_950, 42_400, 185_000, 7_560_000, 200_000_000].map(formatDuration)).toEqual(['0 ms', '999 ms', '1.0s', '9.9s', '42s', '3m 05s', '2h 06m', '2d 7h']);
    expect(formatDuration(null)).toBe('—');
    expect([0, 350, 42_789, 185_250, 7_505_000, -1_200].map(formatOffset)).toEqual(['T+0 ms', 'T+350 ms', 'T+42.78s', 'T+3m 05.2s', 'T+2h 05m 05s', 'T-1.20s']);
  });
});
