import { ConflictError, NotFoundError } from '../errors.js';
import type { AccessMode, PolicyGate, PolicyUser } from '../policy/types.js';
import { runStatement, type Pool } from '../store/index.js';
import type { NewEvent, Timeline } from '../timeline/index.js';
import * as Q from './queries.js';
import { withRunTx } from './run-tx.js';
import { wake } from './transitions.js';

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
  /** The database clock, read with the row. */
  now: Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Answer an approval from any channel (Slack, console, CLI). Checked by
 * `firebreak/approve`; recorded exactly once: the run's chain lock orders
 * concurrent answers (two clicks, two replicas) and the run's worker, only a
 * pending approval can be decided, and each person's vote is unique. A
 * decision wakes the run. Deadlines are the worker's: a waiting run's run_at
 * is its approval's deadline, and the worker that claims it then expires it.
 */
export async function answerApproval(deps: { pool: Pool; timeline: Timeline; policy: PolicyGate }, input: AnswerInput): Promise<{ result: AnswerResult; events: NewEvent[] }> {
  if (!UUID.test(input.approvalId)) throw new NotFoundError(`approval ${input.approvalId} not found`);
  const approvalId = input.approvalId.toLowerCase();
  const first = await runStatement<{ run_id: string }>(deps.pool, Q.APPROVAL_RUN, [approvalId]);
  const runId = first.rows[0]?.run_id;
  if (!runId) throw new NotFoundError(`approval ${input.approvalId} not found`);
  const { result, events } = await withRunTx(deps.pool, deps.timeline, runId, null, async (tx): Promise<AnswerResult> => {
    const { rows } = await tx.query<ApprovalRow>(Q.APPROVAL_BY_ID, approvalId);
    const approval = rows[0]!;
    if (approval.status !== 'pending') {
      throw new ConflictError(`approval ${approval.id} is already ${approval.status}${approval.decided_by ? ` by ${approval.decided_by}` : ''}${approval.decided_at ? ` at ${approval.decided_at.toISOString()}` : ''}`);
    }
    const actor = input.user.id;
    const votes = (await tx.query<{ voter: string; decision: string }>(Q.APPROVAL_VOTES, approval.id)).rows;
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
      now: approval.now.toISOString(),
    });
    const policyData = {
      bundleHash: verdict.bundleHash,
      inputHash: verdict.inputHash,
      ...(verdict.error && { error: verdict.error }),
      ...(!input.user.verified && { verified: false }),
      ...(input.comment && { comment: input.comment }),
    };
    if (!verdict.result.allow) {
      await tx.append({ kind: 'approval.refused', actor, data: { approvalId: approval.id, stepId: approval.step_id, decision: input.decision, reason: verdict.result.reason, ...policyData } });
      return { outcome: 'refused', reason: verdict.result.reason, approvalId: approval.id, runId: approval.run_id };
    }
    await tx.query(Q.INSERT_VOTE, approval.id, actor, input.decision);
    const approvals = approvedBy.length + (input.decision === 'approve' ? 1 : 0);
    let outcome: 'approved' | 'rejected' | 'recorded' = 'recorded';
    if (input.decision === 'reject') outcome = 'rejected';
    else if (approvals >= approval.min_approvals) outcome = 'approved';
    let decidedAt: string | null = null;
    let waitedMs: number | undefined;
    if (outcome !== 'recorded') {
      const decided = (await tx.query<{ decided_at: Date; waited_ms: number }>(Q.DECIDE_APPROVAL, approval.id, outcome, actor)).rows[0]!;
      decidedAt = decided.decided_at.toISOString();
      waitedMs = Math.round(Number(decided.waited_ms));
      await wake(tx, 'approval');
    }
    const data = {
      approvalId: approval.id,
      stepId: approval.step_id,
      decision: input.decision,
      approvals,
      minApprovals: approval.min_approvals,
      reason: verdict.result.reason,
      ...(waitedMs !== undefined && { waitedMs }),
      ...policyData,
    };
    const time = decidedAt ? new Date(decidedAt) : approval.now;
    await tx.append(
      outcome === 'approved'
        ? { kind: 'approval.granted', actor, data, time }
        : outcome === 'rejected'
          ? { kind: 'approval.rejected', actor, data, time }
          : { kind: 'approval.vote', actor, data, time },
    );
    return { outcome, approvalId: approval.id, runId: approval.run_id, approvals, minApprovals: approval.min_approvals, decidedAt };
  });
  return { result, events };
}
