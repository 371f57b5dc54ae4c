/**
 * Stuck runs: runs that stopped making progress. A `running` run is stuck
 * when nothing happened to it (no timeline event other than `run.stuck`, no
 * timer of its own falling due) for longer than its current step's `timeout`
 * (else DEFAULT_STEP_TIMEOUT_MS) plus the lease; a `waiting` run when its
 * approval's deadline passed more than a lease ago and no worker picked it
 * up. Runs of a paused playbook are held, not stuck. Computed in SQL on the
 * database clock (Q.STUCK_RUNS), so every replica agrees.
 *
 * The monitor reports each stall once: under the run's chain lock, an UPDATE
 * of runs.stuck_reported_at decides (not yet reported since the run's last
 * progress), and `run.stuck` is appended in the same transaction, so two
 * replicas send one notice.
 */
import type { Logger } from 'pino';
import { coerceError } from '../errors.js';
import { runStatement, type Pool, type Queryable } from '../store/index.js';
import type { NewEvent, Timeline } from '../timeline/index.js';
import * as Q from './queries.js';
import { withRunTx } from './run-tx.js';

/** A step with no `timeout` (and no action default) may run this long before its run counts as stuck. */
export const DEFAULT_STEP_TIMEOUT_MS = 10 * 60_000;

export interface StuckInfo {
  /** The run's last progress: its last event, or the timer it was parked on, whichever is later. */
  since: string;
  /** The step it is on (null: between steps, or finishing). */
  stepId: string | null;
  /** How long without progress makes it stuck: the step's timeout (or the default) + the lease; the lease for a waiting run. */
  thresholdMs: number;
}

interface StuckRow {
  id: string;
  playbook: string;
  status: string;
  step_id: string | null;
  since: Date;
  threshold_ms: string | number;
  last_event_at: Date | null;
  stuck_reported_at: Date | null;
}

const info = (r: StuckRow): StuckInfo => ({ since: r.since.toISOString(), stepId: r.step_id, thresholdMs: Number(r.threshold_ms) });

/** Stuck runs, oldest stall first, with why. */
export async function findStuckRuns(db: Queryable, leaseMs: number): Promise<Array<{ id: string; playbook: string; status: string; stuck: StuckInfo; reported: boolean }>> {
  const { rows } = await runStatement<StuckRow>(db, Q.STUCK_RUNS, [leaseMs, DEFAULT_STEP_TIMEOUT_MS]);
  return rows.map((r) => ({ id: r.id, playbook: r.playbook, status: r.status, stuck: info(r), reported: r.stuck_reported_at !== null && r.stuck_reported_at >= r.since }));
}

export interface StuckMonitorOptions {
  pool: Pool;
  timeline: Timeline;
  leaseMs: number;
  logger: Logger;
  /** Told after a notice committed (Slack thread, metrics, console). */
  emit: (runId: string, events: NewEvent[]) => void;
  intervalMs?: number;
}

/** One timer per process: finds newly stuck runs and appends one `run.stuck` per stall. */
export class StuckMonitor {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly options: StuckMonitorOptions) {}

  start(): void {
    if (this.timer) return;
    const every = this.options.intervalMs ?? Math.min(5_000, Math.max(250, Math.floor(this.options.leaseMs / 2)));
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.sweep()
        .then(() => undefined)
        .catch((err) => this.options.logger.warn({ err: coerceError(err).message }, 'stuck-run check failed; trying again'))
        .finally(() => (this.running = undefined));
    }, every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Report every run newly stuck; returns the ids this process reported. */
  async sweep(): Promise<string[]> {
    const { pool, timeline, leaseMs } = this.options;
    const reported: string[] = [];
    for (const run of await findStuckRuns(pool, leaseMs)) {
      if (run.reported) continue;
      const { result, events } = await withRunTx(pool, timeline, run.id, null, async (tx) => {
        // The UPDATE decides: another replica may have reported this stall, or the run moved on.
        const claimed = (await tx.query<StuckRow>(Q.CLAIM_STUCK_NOTICE, leaseMs, DEFAULT_STEP_TIMEOUT_MS, run.id)).rows[0];
        if (!claimed) return false;
        await tx.append({
          kind: 'run.stuck',
          actor: 'system',
          data: { stepId: claimed.step_id, lastEventAt: (claimed.last_event_at ?? claimed.since).toISOString(), thresholdMs: Number(claimed.threshold_ms) },
        });
        return true;
      });
      if (!result) continue;
      reported.push(run.id);
      this.options.logger.warn({ runId: run.id, playbook: run.playbook, stepId: run.stuck.stepId, since: run.stuck.since }, 'run is stuck: no progress');
      this.options.emit(run.id, events);
    }
    return reported;
  }
}
