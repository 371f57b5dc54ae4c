/**
 * Schedule triggers: `triggers: [{ schedule: "<cron>", timezone?: "..." }]`.
 *
 * Every replica schedules every cron trigger with node-cron (UTC unless the
 * trigger names a time zone). On each tick every replica asks the engine for
 * the run with the dedup key `schedule:<playbook>:<tick, ISO UTC>`; the runs
 * table's unique `dedup_key` lets exactly one of them create it and gives the
 * others the same run. No leader election: any replica that is up makes the
 * tick happen, and a replica that restarts or ticks late creates nothing new.
 *
 * The scheduler follows the playbook catalog: `sync(playbooks)` after every
 * reload adds new triggers, drops removed ones and leaves unchanged ones
 * running (so a reload never skips or repeats a tick).
 */
import { createTask, type ScheduledTask, type TaskContext } from 'node-cron';
import type { Logger } from 'pino';
import { NotFoundError } from '../errors.js';
import { scheduleTriggers, type Trigger } from '../playbooks/index.js';
import { isDatabaseUnavailable } from '../store/index.js';

export const DEFAULT_TIMEZONE = 'UTC';
export const SCHEDULE_ACTOR = 'schedule';

export interface ScheduledRunRequest {
  playbook: string;
  params: { schedule: string; timezone: string; tick: string };
  startedBy: typeof SCHEDULE_ACTOR;
  trigger: 'schedule';
  dedupKey: string;
}

/** Engine.startRun, or anything with its contract (idempotent on dedupKey). */
export type StartScheduledRun = (request: ScheduledRunRequest) => Promise<{ runId: string; created: boolean }>;

export interface SchedulerOptions {
  startRun: StartScheduledRun;
  logger: Logger;
  /**
   * The pause holding this playbook (the kill switch, docs/safety-rails.md):
   * its ticks are skipped rather than piling up held runs that would all go
   * at once on resume.
   */
  paused?: (playbook: string) => Promise<{ pausedBy: string; reason: string } | undefined>;
  /**
   * Waits between attempts when the run cannot be stored (database
   * unreachable). The dedup key makes retries safe; each retry still uses the
   * tick's own key, so a late retry never creates a second run.
   */
  retryDelaysMs?: number[];
  /**
   * How late (ms) a tick may fire and still run, e.g. after the event loop was
   * blocked; node-cron's default is 1 s. Always below the gap to the next tick.
   */
  lateToleranceMs?: number;
}

export interface ScheduleEntry {
  playbook: string;
  schedule: string;
  timezone: string;
  nextRun: string | null;
}

export interface TickResult {
  playbook: string;
  tick: string;
  dedupKey: string;
  runId: string;
  created: boolean;
}

/** The run of one playbook's tick, the same on every replica. */
export function scheduleDedupKey(playbook: string, tick: Date): string {
  return `schedule:${playbook}:${tickTime(tick).toISOString()}`;
}

/** Ticks are whole seconds; drop any milliseconds so every replica names a tick alike. */
function tickTime(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

interface Entry extends Omit<ScheduleEntry, 'nextRun'> {
  task: ScheduledTask;
}

const entryKey = (playbook: string, schedule: string, timezone: string) => `${playbook}\u0000${schedule}\u0000${timezone}`;

export class Scheduler {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly retryDelaysMs: number[];
  private readonly lateToleranceMs: number;
  private readonly wakers = new Set<() => void>();
  private stopped = false;

  constructor(private readonly options: SchedulerOptions) {
    this.retryDelaysMs = options.retryDelaysMs ?? [1_000, 2_000, 5_000, 10_000, 20_000];
    this.lateToleranceMs = options.lateToleranceMs ?? 30_000;
  }

  /** Make the scheduled tasks match these playbooks' schedule triggers. */
  sync(playbooks: ReadonlyArray<{ name: string; triggers: readonly Trigger[] }>): void {
    if (this.stopped) return;
    const wanted = new Map<string, { playbook: string; schedule: string; timezone: string }>();
    for (const playbook of playbooks) {
      for (const t of scheduleTriggers(playbook)) {
        const timezone = t.timezone ?? DEFAULT_TIMEZONE;
        wanted.set(entryKey(playbook.name, t.schedule, timezone), { playbook: playbook.name, schedule: t.schedule, timezone });
      }
    }
    for (const [key, entry] of this.entries) {
      if (wanted.has(key)) continue;
      void Promise.resolve(entry.task.destroy()).catch(() => {});
      this.entries.delete(key);
      this.options.logger.info({ playbook: entry.playbook, schedule: entry.schedule, timezone: entry.timezone }, 'schedule removed');
    }
    for (const [key, want] of wanted) {
      if (this.entries.has(key)) continue;
      try {
        const task = createTask(want.schedule, (ctx: TaskContext) => this.onTick(want, ctx.date), {
          timezone: want.timezone,
          name: `firebreak:${want.playbook}:${want.schedule}`,
          missedExecutionTolerance: this.lateToleranceMs,
          logger: this.cronLogger(),
        });
        task.on('execution:missed', (ctx) =>
          this.options.logger.warn({ playbook: want.playbook, tick: ctx.date.toISOString() }, 'schedule tick missed (process was busy); other replicas may still start it'),
        );
        void Promise.resolve(task.start()).catch((err) => this.options.logger.error({ err, playbook: want.playbook }, 'cannot start schedule'));
        this.entries.set(key, { ...want, task });
        this.options.logger.info({ ...want, nextRun: task.getNextRun()?.toISOString() ?? null }, 'schedule registered');
      } catch (err) {
        // The playbook schema validates cron and time zone; this is a last line of defence.
        this.options.logger.error({ ...want, err: (err as Error).message }, 'cannot schedule playbook');
      }
    }
  }

  /** The registered schedules and when each next fires. */
  list(): ScheduleEntry[] {
    return [...this.entries.values()]
      .map((e) => ({ playbook: e.playbook, schedule: e.schedule, timezone: e.timezone, nextRun: e.task.getNextRun()?.toISOString() ?? null }))
      .sort((a, b) => a.playbook.localeCompare(b.playbook) || a.schedule.localeCompare(b.schedule));
  }

  /**
   * Start (or find) the run of one tick. Called by node-cron; exposed for
   * tests and for catching up by hand. Never throws: failures are logged.
   */
  async fire(playbook: string, tick: Date, schedule = '', timezone = DEFAULT_TIMEZONE): Promise<TickResult | undefined> {
    const at = tickTime(tick);
    const dedupKey = scheduleDedupKey(playbook, at);
    const request: ScheduledRunRequest = {
      playbook,
      params: { schedule, timezone, tick: at.toISOString() },
      startedBy: SCHEDULE_ACTOR,
      trigger: 'schedule',
      dedupKey,
    };
    // If the pauses cannot be read, the tick goes ahead: workers still hold a paused playbook's runs (CLAIM_RUNS).
    const pause = await this.options.paused?.(playbook).catch((err) => {
      this.options.logger.warn({ playbook, err: (err as Error).message }, 'could not read automation pauses for a scheduled tick');
      return undefined;
    });
    if (pause) {
      this.options.logger.info({ playbook, tick: at.toISOString(), pausedBy: pause.pausedBy, reason: pause.reason }, 'automation paused; scheduled tick skipped');
      return undefined;
    }
    for (let attempt = 0; ; attempt++) {
      try {
        const { runId, created } = await this.options.startRun(request);
        this.options.logger.info({ playbook, tick: at.toISOString(), runId, created }, created ? 'scheduled run started' : 'scheduled run already started by another replica');
        return { playbook, tick: at.toISOString(), dedupKey, runId, created };
      } catch (err) {
        if (err instanceof NotFoundError) {
          this.options.logger.warn({ playbook, tick: at.toISOString(), err: err.message }, 'scheduled playbook is gone; tick skipped');
          return undefined;
        }
        const delay = this.retryDelaysMs[attempt];
        if (!isDatabaseUnavailable(err) || delay === undefined || this.stopped) {
          this.options.logger.error({ playbook, tick: at.toISOString(), err }, 'scheduled run not started');
          return undefined;
        }
        this.options.logger.warn({ playbook, tick: at.toISOString(), retryInMs: delay }, 'database unavailable; retrying the scheduled run');
        await this.sleep(delay);
        if (this.stopped) return undefined;
      }
    }
  }

  /** Stop every task and wait for ticks being stored. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const wake of [...this.wakers]) wake();
    await Promise.all([...this.entries.values()].map((e) => Promise.resolve(e.task.destroy()).catch(() => {})));
    this.entries.clear();
    await Promise.allSettled([...this.inFlight]);
  }

  private onTick(want: { playbook: string; schedule: string; timezone: string }, date: Date): Promise<unknown> {
    const work = this.fire(want.playbook, date, want.schedule, want.timezone);
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
    return work;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  private cronLogger() {
    const log = this.options.logger;
    return {
      info: (message: string) => log.debug({ component: 'node-cron' }, message),
      warn: (message: string) => log.warn({ component: 'node-cron' }, message),
      error: (message: string | Error, err?: Error) => log.error({ component: 'node-cron', err: err ?? message }, typeof message === 'string' ? message : message.message),
      debug: (message: string | Error) => log.debug({ component: 'node-cron' }, String(message)),
    };
  }
}
