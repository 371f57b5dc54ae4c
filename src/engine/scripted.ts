/**
 * Scripted dry runs: a replay of a recorded run (`firebreak replay --since`)
 * or a playbook test (`firebreak test`). Such a run never waits for a person
 * or the world: its approvals are answered as scripted (the recorded run's
 * answers, or the test's), an approval nobody scripted stops it ("would ask
 * approval"), and a replay answers each step the recorded run finished with
 * the recorded result, deciding policy with the recorded `now` and `history`,
 * so the only differences left are the playbook's (and the policy's).
 */
import type { ErrorInfo } from '../timeline/index.js';
import { runStatement, type Queryable } from '../store/index.js';
import * as Q from './queries.js';
import { isScripted, type ApprovalStatus, type DryRunOptions, type RunRow, type ScriptedAnswer } from './types.js';

export type RecordedOutcome = { status: 'succeeded'; output: unknown } | { status: 'failed'; error: ErrorInfo };

export interface Script {
  /** The recorded run this one replays (none for a test). */
  replayOf: string | null;
  /** What the recorded run's step ended with, when it finished it. */
  outcome(stepId: string): RecordedOutcome | undefined;
  /** `now` and `history` the policy saw when the recorded run decided this step (else the test's `policyNow`). */
  decisionContext(stepId: string): { now?: string; history?: unknown[] };
  /** How round `round` of the step's approval is answered; undefined: nobody answered it (the run stops there). */
  answer(stepId: string, round: number): { answer: ScriptedAnswer; reason: string } | undefined;
}

interface RecordedRow {
  id: string;
  finished: boolean;
  steps: Record<string, { status: string; output: unknown; error: ErrorInfo | null }>;
  approvals: Array<{ stepId: string; round: number; status: ApprovalStatus; decidedBy: string | null }>;
  decisions: Record<string, { now?: unknown; history?: unknown } | null>;
}

const ANSWER_OF: Partial<Record<ApprovalStatus, ScriptedAnswer>> = { approved: 'approve', rejected: 'reject', expired: 'expire', cancelled: 'cancel' };

/** Recorded runs by id: a finished run does not change, so it is read once per process. */
export class RecordedRuns {
  private readonly byId = new Map<string, RecordedRow | null>();

  async get(db: Queryable, runId: string): Promise<RecordedRow | null> {
    if (this.byId.has(runId)) return this.byId.get(runId)!;
    const row = (await runStatement<RecordedRow>(db, Q.RECORDED_RUN, [runId])).rows[0] ?? null;
    // An unfinished recorded run may still move: keep only what cannot change.
    if (row?.finished) {
      if (this.byId.size >= 200) this.byId.delete(this.byId.keys().next().value!);
      this.byId.set(runId, row);
    }
    return row;
  }
}

/** The script of a scripted dry run; undefined for any other run. */
export async function scriptOf(db: Queryable, recorded: RecordedRuns, run: Pick<RunRow, 'dry_run' | 'dry_run_options'>): Promise<Script | undefined> {
  const options: DryRunOptions | null = run.dry_run ? run.dry_run_options : null;
  if (!isScripted(options)) return undefined;
  const rec = options!.replayOf ? await recorded.get(db, options!.replayOf) : null;
  const answers = options!.answers ?? {};
  return {
    replayOf: options!.replayOf ?? null,
    outcome(stepId) {
      const s = rec?.steps[stepId];
      if (!s) return undefined;
      // A compensated step had succeeded before its run aborted.
      if (s.status === 'succeeded' || s.status === 'compensated') return { status: 'succeeded', output: s.output };
      if (s.status === 'failed' && s.error) return { status: 'failed', error: s.error };
      return undefined;
    },
    decisionContext(stepId) {
      const d = rec?.decisions[stepId];
      if (d && typeof d.now === 'string') return { now: d.now, ...(Array.isArray(d.history) && { history: d.history }) };
      return options!.policyNow ? { now: options!.policyNow } : {};
    },
    answer(stepId, round) {
      if (rec) {
        const a = rec.approvals.find((x) => x.stepId === stepId && x.round === round);
        const answer = a && ANSWER_OF[a.status];
        if (!answer) return undefined;
        return { answer, reason: `as in the recorded run ${rec.id}: ${a.status}${a.decidedBy ? ` by ${a.decidedBy}` : ''}` };
      }
      const answer = answers[stepId]?.[round - 1];
      return answer ? { answer, reason: `scripted answer: ${answer}` } : undefined;
    },
  };
}
