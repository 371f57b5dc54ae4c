import { ConflictError, NotFoundError } from '../errors.js';
import type { AccessMode, PolicyGate, PolicyUser } from '../policy/types.js';
import { withTransaction, type Pool } from '../store/index.js';
import type { NewEvent, Timeline } from '../timeline/index.js';
import * as Q from './queries.js';

export interface AnswerInput {
  approvalId: string;
  decision: 'approve' | 'reject';
  /** Who answers: the authenticated identity (its `id` is the actor recorded: `slack:U123`, `oidc:alice`, `token:bob`). */
  user: PolicyUser;
  /** Local mode (names unverified) or not; `firebreak/approve` sees it. */
  mode: AccessMode;
  /** Why, in the answerer's words (kept in the timeline). */
  comment?: string;
}

export type AnswerResult =
  | { outcome: 'refused'; reason: string; approvalId: string; runId: string }
  | { outcome: 'approved' | 'rejected' | 'recorded'; approvalId: string; runId: string; approvals: number; minApprovals: number; decidedAt: string | null };

interface ApprovalRow {
  id: string;
  run_id: string;
  step_id: string;
  status: string;
  approvers: string[];
  min_approvals: number;
  request: { action?: string; impact?: 'low' | 'high' };
  playbook: string;
  started_by: string | null;
  decided_by: string | null;
  decided_at: Date | null;
  requested_at: Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Answer an approval from any channel (Slack, console, CLI). Checked by
 * `firebreak/approve`; recorded exactly once: the run's chain lock orders
 * concurrent answers (two clicks, two replicas), only a pending approval can
 * be decided, and each person's vote is unique.
 */
export async function answerApproval(deps: { pool: Pool; timeline: Timeline; policy: PolicyGate; now: () => number }, input: AnswerInput): Promise<{ result: AnswerResult; events: NewEvent[] }> {
  if (!UUID.test(input.approvalId)) throw new NotFoundError(`approval ${input.approvalId} not found`);
  const first = await deps.pool.query<{ run_id: string }>(Q.APPROVAL_RUN, [input.approvalId]);
  const runId = first.rows[0]?.run_id;
  if (!runId) throw new NotFoundError(`approval ${input.approvalId} not found`);
  const events: NewEvent[] = [];
  const result = await withTransaction(deps.pool, async (client): Promise<AnswerResult> => {
    await deps.timeline.lockRun(client, runId);
    const { rows } = await client.query<ApprovalRow>(Q.APPROVAL_BY_ID, [input.approvalId]);
    const approval = rows[0]!;
    if (approval.status !== 'pending') {
      throw new ConflictError(`approval ${approval.id} is already ${approval.status}${approval.decided_by ? ` by ${approval.decided_by}` : ''}${approval.decided_at ? ` at ${approval.decided_at.toISOString()}` : ''}`);
    }
    const actor = input.user.id;
    const votes = (await client.query<{ voter: string; decision: string }>(Q.APPROVAL_VOTES, [approval.id])).rows;
    if (votes.some((v) => v.voter === actor)) throw new ConflictError(`${actor} has already answered approval ${approval.id}`);
    const approvedBy = votes.filter((v) => v.decision === 'approve').map((v) => v.voter);
    const verdict = await deps.policy.approve({
      approval: {
        id: approval.id,
        run_id: approval.run_id,
        step_id: approval.step_id,
        approvers: approval.approvers,
        min_approvals: approval.min_approvals,
        started_by: approval.started_by,
        playbook: approval.playbook,
        action: approval.request.action ?? '',
        impact: approval.request.impact ?? 'low',
        decision: input.decision,
        already_approved_by: approvedBy,
      },
      user: input.user,
      mode: input.mode,
      now: new Date(deps.now()).toISOString(),
    });
    const policyData = {
      bundleHash: verdict.bundleHash,
      inputHash: verdict.inputHash,
      ...(verdict.error && { error: verdict.error }),
      ...(!input.user.verified && { verified: false }),
      ...(input.comment && { comment: input.comment }),
    };
    if (!verdict.result.allow) {
      events.push({ kind: 'approval.refused', actor, data: { approvalId: approval.id, stepId: approval.step_id, decision: input.decision, reason: verdict.result.reason, ...policyData } });
      await deps.timeline.appendToRun(client, approval.run_id, ...events);
      return { outcome: 'refused', reason: verdict.result.reason, approvalId: approval.id, runId: approval.run_id };
    }
    await client.query(Q.INSERT_VOTE, [approval.id, actor, input.decision]);
    const approvals = approvedBy.length + (input.decision === 'approve' ? 1 : 0);
    let outcome: 'approved' | 'rejected' | 'recorded' = 'recorded';
    if (input.decision === 'reject') outcome = 'rejected';
    else if (approvals >= approval.min_approvals) outcome = 'approved';
    let decidedAt: string | null = null;
    if (outcome !== 'recorded') {
      await client.query(Q.DECIDE_APPROVAL, [approval.id, outcome, actor]);
      await client.query(Q.RESUME_RUN, [approval.run_id]);
      await client.query(Q.NOTIFY_RUNNABLE, ['approval']);
      decidedAt = new Date(deps.now()).toISOString();
    }
    const kind = outcome === 'approved' ? 'approval.granted' : outcome === 'rejected' ? 'approval.rejected' : 'approval.vote';
    events.push({
      kind,
      actor,
      data: {
        approvalId: approval.id,
        stepId: approval.step_id,
        decision: input.decision,
        approvals,
        minApprovals: approval.min_approvals,
        reason: verdict.result.reason,
        ...(outcome !== 'recorded' && { waitedMs: deps.now() - approval.requested_at.getTime() }),
        ...policyData,
      },
    });
    await deps.timeline.appendToRun(client, approval.run_id, ...events);
    return { outcome, approvalId: approval.id, runId: approval.run_id, approvals, minApprovals: approval.min_approvals, decidedAt };
  });
  return { result, events };
}

/**
 * Approvals past their deadline: mark each expired and wake its run, which
 * applies `on_timeout`. The database decides: DUE_APPROVALS reads without
 * locks, EXPIRE_APPROVAL changes only a still-pending row under the run's
 * chain lock, so replicas sweeping at the same time (and an answer arriving
 * at the last moment) expire an approval at most once.
 */
export async function expireDueApprovals(deps: { pool: Pool; timeline: Timeline }, onEvents: (runId: string, events: NewEvent[]) => void): Promise<number> {
  const { rows } = await deps.pool.query<{ id: string; run_id: string; step_id: string }>(Q.DUE_APPROVALS);
  let expired = 0;
  for (const approval of rows) {
    const events: NewEvent[] = [];
    await withTransaction(deps.pool, async (client) => {
      await deps.timeline.lockRun(client, approval.run_id);
      const updated = await client.query<{ on_timeout: string }>(Q.EXPIRE_APPROVAL, [approval.id]);
      if (updated.rowCount === 0) return;
      events.push({ kind: 'approval.expired', actor: 'system', data: { approvalId: approval.id, stepId: approval.step_id, onTimeout: updated.rows[0]!.on_timeout } });
      await deps.timeline.appendToRun(client, approval.run_id, ...events);
      await client.query(Q.RESUME_RUN, [approval.run_id]);
      await client.query(Q.NOTIFY_RUNNABLE, ['expired']);
    });
    if (events.length > 0) {
      expired++;
      onEvents(approval.run_id, events);
    }
  }
  return expired;
}
