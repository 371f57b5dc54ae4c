/**
 * Admission: a queued run starts when its concurrency key has a free slot and
 * no older run is queued for it (first come, first served). Decided under the
 * key's lock, so two workers admitting runs of one key see each other, and a
 * finishing run's wake (also under the key's lock) cannot slip between the
 * count and the park.
 */
import { call } from '../store/index.js';
import * as Q from './queries.js';
import type { RunSession } from './run-tx.js';
import { admit, park } from './transitions.js';
import type { StepRow } from './types.js';

/** Admit the session's queued run, or park it. True when it may run now. */
export async function admitOrPark(session: RunSession): Promise<boolean> {
  const run = session.run;
  let admitted: boolean;
  if (!run.concurrency_key || !run.concurrency_limit) {
    // Nothing to decide under a lock: the admission commits with the first step's start.
    const change = admit(run, session.workerId);
    session.defer(change.events, change.calls);
    admitted = true;
  } else {
    const limit = run.concurrency_limit;
    admitted = await session.decideUnderGuard(
      call(Q.KEY_OCCUPANCY, run.concurrency_key, run.id, run.created_at),
      (rows) => {
        const o = rows[0] as { active: number; ahead: number; queued_before: boolean } | undefined;
        const occupancy = { active: o?.active ?? 0, ahead: o?.ahead ?? 0, queuedBefore: o?.queued_before ?? false };
        if (occupancy.active + occupancy.ahead >= limit) return { ...park(run, occupancy), result: false };
        return { ...admit(run, session.workerId), result: true };
      },
      { byKey: true },
    );
  }
  if (!admitted) return false;
  run.status = 'running';
  run.started_at ??= new Date(session.now());
  if (session.steps.length === 0) session.steps = run.definition.steps.map((s, position): StepRow => freshStep(s.id, position, s.action));
  return true;
}

function freshStep(stepId: string, position: number, action: string): StepRow {
  return { step_id: stepId, position, action, target: null, status: 'pending', attempts: 0, started_at: null, finished_at: null, output: null, error: null, poll_state: null, cleared_at: null, compensation_status: null };
}
