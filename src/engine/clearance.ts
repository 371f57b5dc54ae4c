/**
 * Clearance: may this step run now? The policy decides (`firebreak/decision`,
 * fail closed), and when it or the step asks for an approval, the step's
 * latest approval decides: none yet ⇒ request one and wait (the waiting run's
 * run_at is the approval's deadline); approved ⇒ clear; rejected ⇒ abort;
 * cancelled (alert resolved) ⇒ skip; deadline passed ⇒ expire it, then
 * `on_timeout` (abort, skip, or one escalation round).
 */
import type { ActionDefinition } from '../actions/index.js';
import { coerceError } from '../errors.js';
import type { PlaybookStep } from '../playbooks/index.js';
import type { Decision, DecisionInput, Evaluated, PolicyGate } from '../policy/types.js';
import { call, runStatement, type Pool } from '../store/index.js';
import type { NewEvent } from '../timeline/index.js';
import * as Q from './queries.js';
import type { RunSession } from './run-tx.js';
import type { Script } from './scripted.js';
import { merge, release, resumeWaiting, type Change } from './transitions.js';
import type { ApprovalRow } from './types.js';

export type Clearance =
  /** Run it: `events` (the decision) are committed with the attempt's start. */
  | { kind: 'cleared'; events: NewEvent[]; target: string | null }
  | { kind: 'denied'; events: NewEvent[]; reasons: string[] }
  /** Ask (or ask again, escalated) and wait: commit `change`, the lease is released. */
  | { kind: 'ask'; change: Change }
  /** The approval is still pending: wait again until its deadline. */
  | { kind: 'wait'; approvalId: string }
  /** The deadline passed: commit `change` (approval.expired), then decide again. */
  | { kind: 'expire'; change: Change }
  | { kind: 'skip'; data: { reason: string; approvalId?: string } }
  | { kind: 'abort'; reason: string; actor: string }
  /** A scripted dry run: the approval was asked and answered at once; commit `change`, then decide again. */
  | { kind: 'answered'; change: Change; approval: ApprovalRow }
  /** A scripted dry run reached an approval nobody scripted: commit `change` (asked, then stopped); the run ends. */
  | { kind: 'stop'; change: Change; reason: string };

export interface ClearanceDeps {
  pool: Pool;
  policy: PolicyGate;
  redact: (value: unknown) => unknown;
  /** A scripted dry run's script (replay, playbook test): recorded `now`/`history`, scripted answers. */
  script?: Script;
}

/** Who answers a scripted approval, in the timeline. */
export const REPLAY_ACTOR = 'replay';

/** The policy's answer; a throwing gate is a deny (the gate fails closed itself; this is the last line of defence). */
async function decide(policy: PolicyGate, input: DecisionInput): Promise<Evaluated<Decision>> {
  try {
    return await policy.decide(input);
  } catch (err) {
    const reason = `policy evaluation failed: ${coerceError(err).message}`;
    return { result: { allow: false, require_approval: false, approvers: [], min_approvals: 0, reasons: [reason] }, bundleHash: 'unknown', inputHash: 'unknown', error: reason };
  }
}

export async function clearStep(deps: ClearanceDeps, session: RunSession, def: PlaybookStep, action: ActionDefinition, input: unknown): Promise<Clearance> {
  const run = session.run;
  const target = action.target?.(input) ?? null;
  const params = deps.redact(input);
  // A replay decides with what the recorded run's decision saw; a test with its fixed `now`.
  const recorded = deps.script?.decisionContext(def.id) ?? {};
  const history = recorded.history
    ? recorded.history
    : target
      ? (await runStatement(deps.pool, Q.HISTORY, [def.action, target, deps.script?.replayOf ?? run.id, run.id])).rows.map((h) => ({ ...h, at: (h.at as Date).toISOString() }))
      : [];
  const decisionInput: DecisionInput = {
    playbook: { name: run.definition.name, description: run.definition.description },
    step: { id: def.id, action: def.action, impact: def.impact, approval: def.approval, params, target: target ?? '' } as DecisionInput['step'],
    alert: run.alert ?? null,
    run: { id: run.id, trigger: run.trigger, started_by: run.started_by, dry_run: run.dry_run },
    history: history as DecisionInput['history'],
    now: recorded.now ?? new Date(session.now()).toISOString(),
  };
  const evaluated = await decide(deps.policy, decisionInput);
  const decision = evaluated.result;
  const decisionEvent: NewEvent = {
    kind: 'policy.decision',
    actor: 'policy',
    data: {
      stepId: def.id,
      entrypoint: 'firebreak/decision',
      allow: decision.allow,
      requireApproval: decision.require_approval,
      approvers: decision.approvers,
      minApprovals: decision.min_approvals,
      reasons: decision.reasons,
      bundleHash: evaluated.bundleHash,
      inputHash: evaluated.inputHash,
      // The input itself (params already redacted), so `firebreak policy eval` can replay the decision.
      input: decisionInput,
      ...(evaluated.error && { error: evaluated.error }),
    },
  };
  if (!decision.allow) return { kind: 'denied', events: [decisionEvent, { kind: 'step.denied', actor: 'policy', data: { stepId: def.id, reasons: decision.reasons } }], reasons: decision.reasons };
  const needsApproval = def.approval === 'required' || (def.approval === 'policy' && decision.require_approval);
  if (!needsApproval) return { kind: 'cleared', events: [decisionEvent], target };

  const latest = session.approval?.step_id === def.id ? session.approval : null;
  const ask = (round: number, approvers: string[]): Clearance => {
    const change = askApproval(session, def, decision, decisionEvent, params, round, approvers);
    return deps.script ? scriptedAnswer(deps.script, session, def, change, round, approvers, evaluated.bundleHash) : { kind: 'ask', change };
  };
  if (!latest) return ask(1, decision.approvers);
  switch (latest.status) {
    case 'pending':
      if (!latest.due) return { kind: 'wait', approvalId: latest.id };
      return {
        kind: 'expire',
        change: {
          events: [{ kind: 'approval.expired', actor: 'system', data: { approvalId: latest.id, stepId: def.id, onTimeout: latest.on_timeout } }],
          calls: [call(Q.EXPIRE_APPROVAL, latest.id), resumeWaiting(run.id)],
        },
      };
    case 'approved':
      return { kind: 'cleared', events: [decisionEvent], target };
    case 'cancelled':
      return { kind: 'skip', data: { reason: 'approval cancelled (alert resolved)', approvalId: latest.id } };
    case 'rejected':
      return { kind: 'abort', reason: `approval ${latest.id} for step ${def.id} rejected by ${latest.decided_by ?? 'someone'}`, actor: latest.decided_by ?? 'system' };
    case 'expired':
      if (def.onTimeout === 'skip') return { kind: 'skip', data: { reason: 'approval expired (on_timeout: skip)', approvalId: latest.id } };
      if (def.onTimeout === 'escalate' && latest.round === 1 && def.escalateTo.length > 0) return ask(2, def.escalateTo);
      return { kind: 'abort', reason: `approval for step ${def.id} expired`, actor: 'system' };
  }
}

/**
 * A scripted dry run never waits for a person: the approval just asked is
 * answered at once as scripted (actor `replay`), or, when nobody scripted an
 * answer, cancelled and the run stopped there ("would ask approval of ...").
 */
function scriptedAnswer(script: Script, session: RunSession, def: PlaybookStep, asked: Change, round: number, approvers: string[], bundleHash: string): Clearance {
  const run = session.run;
  const requested = asked.events.find((e) => e.kind === 'approval.requested');
  const approvalId = requested?.kind === 'approval.requested' ? requested.data.approvalId : '';
  const minApprovals = requested?.kind === 'approval.requested' ? requested.data.minApprovals : 1;
  // The request as askApproval made it, without parking the run.
  const base: Change = { events: asked.events, calls: asked.calls.filter((c) => c.statement !== Q.RELEASE_RUN) };
  const scripted = script.answer(def.id, round);
  if (!scripted) {
    const reason = `would ask approval of ${approvers.join(', ') || 'any approver'} for step ${def.id}${round > 1 ? ` (round ${round})` : ''}; ${script.replayOf ? `the recorded run ${script.replayOf} has no answer for it` : 'no scripted answer'}, so the dry run stops here`;
    return {
      kind: 'stop',
      reason,
      change: merge(base, {
        events: [{ kind: 'approval.cancelled', actor: REPLAY_ACTOR, data: { approvalId, stepId: def.id, reason } }],
        calls: [call(Q.CANCEL_RUN_APPROVALS, run.id, REPLAY_ACTOR)],
      }),
    };
  }
  const status = ({ approve: 'approved', reject: 'rejected', expire: 'expired', cancel: 'cancelled' } as const)[scripted.answer];
  const stamp = { bundleHash, inputHash: 'none: a scripted answer is not asked of firebreak/approve' };
  const answer = { approvalId, stepId: def.id, decision: scripted.answer, approvals: scripted.answer === 'approve' ? minApprovals : 0, minApprovals, reason: scripted.reason, ...stamp };
  const event: NewEvent =
    scripted.answer === 'approve'
      ? { kind: 'approval.granted', actor: REPLAY_ACTOR, data: answer }
      : scripted.answer === 'reject'
        ? { kind: 'approval.rejected', actor: REPLAY_ACTOR, data: answer }
        : scripted.answer === 'expire'
          ? { kind: 'approval.expired', actor: REPLAY_ACTOR, data: { approvalId, stepId: def.id, onTimeout: def.onTimeout } }
          : { kind: 'approval.cancelled', actor: REPLAY_ACTOR, data: { approvalId, stepId: def.id, reason: scripted.reason } };
  return {
    kind: 'answered',
    change: merge(base, { events: [event], calls: [call(Q.DECIDE_APPROVAL, approvalId, status, REPLAY_ACTOR)] }),
    approval: { id: approvalId, step_id: def.id, round, status, decided_by: REPLAY_ACTOR, approvers, on_timeout: def.onTimeout, expires_at: null, due: false },
  };
}

/**
 * Record the decision, create the approval, and park the run `waiting` until
 * the approval's deadline: both are fb_now() + timeout in one transaction, so
 * the claim that picks the run up again is the expiry.
 */
function askApproval(session: RunSession, def: PlaybookStep, decision: Decision, decisionEvent: NewEvent, params: unknown, round: number, approvers: string[]): Change {
  const run = session.run;
  const approvalId = crypto.randomUUID();
  const minApprovals = Math.max(1, decision.min_approvals || 1);
  const request = { playbook: run.playbook, stepId: def.id, action: def.action, impact: def.impact, params, reasons: decision.reasons, dryRun: run.dry_run };
  const events: NewEvent[] = [decisionEvent];
  if (round > 1) events.push({ kind: 'approval.escalated', actor: 'system', data: { stepId: def.id, approvalId, round, approvers } });
  events.push({
    kind: 'approval.requested',
    actor: 'policy',
    data: { approvalId, stepId: def.id, action: def.action, params, approvers, minApprovals, reasons: decision.reasons, timeoutMs: def.approvalTimeoutMs, onTimeout: def.onTimeout, impact: def.impact, round },
  });
  return {
    events,
    calls: [
      call(Q.INSERT_APPROVAL, approvalId, run.id, def.id, round, approvers, minApprovals, decision.reasons, request, def.onTimeout, def.approvalTimeoutMs),
      release(run.id, 'waiting', def.approvalTimeoutMs),
    ],
  };
}
