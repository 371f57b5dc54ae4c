/**
 * The kill switch and the circuit breaker (docs/safety-rails.md). Pauses are
 * rows in automation_pauses; this class is the one writer. Ingest reads them
 * in its statement (fb_rails_verdict), workers do not claim paused runs
 * (CLAIM_RUNS), and the executor asks `paused()` before a step starts. This
 * process keeps a copy of the open pauses, refreshed every second and at
 * once on NOTIFY firebreak_automation (any replica), for the console banner
 * and the executor's cheap check.
 */
import type { Logger } from 'pino';
import type { Access, Identity } from '../access/index.js';
import type { EngineRails, HoldingPause, PlannedRun, RailsPreview, RunEnd, RunRow } from '../engine/index.js';
import type { Alert, SilenceLookup } from '../ingest/index.js';
import { checkStorableText, NotFoundError } from '../errors.js';
import { durationText, type Playbook } from '../playbooks/index.js';
import { runStatement, withTransaction, type Pool, type Queryable } from '../store/index.js';
import type { NewEvent, Timeline } from '../timeline/index.js';
import * as Q from './queries.js';

export interface Pause {
  id: number;
  /** null: all automation. */
  playbook: string | null;
  pausedBy: string;
  pausedAt: string;
  reason: string;
  source: 'person' | 'circuit_breaker';
  /** The run whose failure tripped the breaker. */
  runId: string | null;
  breakerKey: string | null;
}

export interface PlaybookRails {
  name: string;
  /** True when this playbook's runs are held: by its own pause or by the global one. */
  paused: boolean;
  /** Its own pause (the global one is the status's `pause`). */
  pause: Pause | null;
  /** Who paused it, when and why: its own pause, else the global one; null while it runs. */
  pausedBy: string | null;
  pausedAt: string | null;
  reason: string | null;
  limits: { key: string | null; maxRuns: number | null; per: string | null; cooldown: string | null } | null;
  circuitBreaker: { failures: number; then: 'pause' } | null;
}

export interface AutomationStatus {
  /** True when ALL automation is paused. */
  paused: boolean;
  /** The global pause: who, when, why. */
  pause: Pause | null;
  pausedBy: string | null;
  pausedAt: string | null;
  reason: string | null;
  playbooks: PlaybookRails[];
}

export interface AutomationDeps {
  pool: Pool;
  timeline: Timeline;
  access: Access;
  logger: Logger;
  playbooks: () => Playbook[];
  /** Events written to a run's chain (a breaker trip is said in the run's Slack thread). */
  onRunEvents?: (runId: string, events: NewEvent[]) => void;
  /** Told after a pause or resume this process made or heard of. */
  onChange?: () => void;
  /** Active silences (dry runs report a silence that would suppress them). */
  silences?: SilenceLookup;
}

interface PauseRow {
  id: string | number;
  playbook: string | null;
  paused_at: Date;
  paused_by: string;
  reason: string;
  source: 'person' | 'circuit_breaker';
  run_id: string | null;
  breaker_key: string | null;
}

function toPause(r: PauseRow): Pause {
  return { id: Number(r.id), playbook: r.playbook, pausedBy: r.paused_by, pausedAt: r.paused_at.toISOString(), reason: r.reason, source: r.source, runId: r.run_id, breakerKey: r.breaker_key };
}

const REFRESH_MS = 1_000;
const NO_REASON = '(no reason given)';

export class Automation implements EngineRails {
  private open: Pause[] = [];
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;

  constructor(private readonly deps: AutomationDeps) {}

  /** Load the open pauses and keep them fresh. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh().catch((err) => this.deps.logger.warn({ err: (err as Error).message }, 'could not read automation pauses')), REFRESH_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Read the open pauses again (a NOTIFY from any replica calls this). */
  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const before = this.signature();
        this.open = (await runStatement<PauseRow>(this.deps.pool, Q.OPEN_PAUSES, [])).rows.map(toPause);
        if (this.signature() !== before) this.deps.onChange?.();
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private signature(): string {
    return this.open.map((p) => p.id).join(',');
  }

  /** The global pause, as last seen (the console banner). */
  get globalPause(): Pause | undefined {
    return this.open.find((p) => p.playbook === null);
  }

  /** Every open pause, as last seen. */
  get pauses(): readonly Pause[] {
    return this.open;
  }

  pausedNow(playbook: string): HoldingPause | undefined {
    return this.open.find((p) => p.playbook === null || p.playbook === playbook);
  }

  async paused(playbook: string): Promise<HoldingPause | undefined> {
    if (!this.pausedNow(playbook)) return undefined;
    await this.refresh();
    return this.pausedNow(playbook);
  }

  // ---- acts ----------------------------------------------------------------------------------

  /** `firebreak pause [<playbook>]`: authorized, recorded on the automation chain, heard by every replica. */
  async pause(who: Identity, input: { playbook?: string | null; reason?: string }): Promise<{ pause: Pause; alreadyPaused: boolean }> {
    const playbook = input.playbook ?? null;
    if (playbook !== null) this.knownPlaybook(playbook);
    const reason = checkStorableText(input.reason?.trim() || NO_REASON, 'reason');
    await this.deps.access.require(who, 'automation.pause', { playbook });
    const result = await withTransaction(this.deps.pool, (client) => this.insertPause(client, { playbook, by: who.id, reason, source: 'person' }));
    await this.refresh();
    return result;
  }

  /** `firebreak resume [<playbook>]`: only the named scope (a playbook, or the global switch) resumes. */
  async resume(who: Identity, input: { playbook?: string | null; reason?: string }): Promise<{ resumed: Pause | null; stillPaused: Pause[] }> {
    const playbook = input.playbook ?? null;
    // A paused playbook can be resumed by name after its file is gone (a tripped breaker, a removed playbook).
    if (playbook !== null && !this.open.some((p) => p.playbook === playbook)) this.knownPlaybook(playbook);
    const reason = checkStorableText(input.reason?.trim() || NO_REASON, 'reason');
    await this.deps.access.require(who, 'automation.resume', { playbook });
    const resumed = await withTransaction(this.deps.pool, async (client) => {
      const row = (await runStatement<PauseRow>(client, Q.RESUME, [playbook, who.id, reason])).rows[0];
      if (!row) return null;
      const pause = toPause(row);
      await this.deps.timeline.appendAutomation(client, { kind: 'automation.resumed', actor: who.id, data: { playbook, reason, pauseId: pause.id, pausedBy: pause.pausedBy, pausedAt: pause.pausedAt } });
      await runStatement(client, Q.NOTIFY_AUTOMATION, ['resumed']);
      return pause;
    });
    await this.refresh();
    return { resumed, stillPaused: [...this.open] };
  }

  private knownPlaybook(name: string): void {
    const known = this.deps.playbooks();
    if (!known.some((p) => p.name === name)) throw new NotFoundError(`playbook ${name} not found (known: ${known.map((p) => p.name).join(', ') || 'none'})`);
  }

  private async insertPause(client: Queryable, input: { playbook: string | null; by: string; reason: string; source: Pause['source']; runId?: string; breakerKey?: string }): Promise<{ pause: Pause; alreadyPaused: boolean }> {
    const inserted = (await runStatement<PauseRow>(client, Q.INSERT_PAUSE, [input.playbook, input.by, input.reason, input.source, input.runId ?? null, input.breakerKey ?? null])).rows[0];
    if (!inserted) {
      const existing = (await runStatement<PauseRow>(client, Q.OPEN_PAUSE_OF, [input.playbook])).rows[0]!;
      return { pause: toPause(existing), alreadyPaused: true };
    }
    const pause = toPause(inserted);
    await this.deps.timeline.appendAutomation(client, {
      kind: 'automation.paused',
      actor: input.by,
      data: { playbook: input.playbook, reason: input.reason, pauseId: pause.id, source: input.source, ...(input.runId && { runId: input.runId }) },
    });
    await runStatement(client, Q.NOTIFY_AUTOMATION, ['paused']);
    return { pause, alreadyPaused: false };
  }

  // ---- the circuit breaker -------------------------------------------------------------------

  /**
   * After a run ended: when it failed and its playbook has a circuit breaker,
   * look at the key's newest finished runs; `failures` failed in a row pause
   * the playbook (actor `circuit-breaker`), say so on the automation chain
   * and in the run's thread, and wait for a person to resume.
   */
  async runEnded(run: RunRow, status: RunEnd): Promise<void> {
    const breaker = run.definition.circuitBreaker;
    if (status !== 'failed' || !breaker || run.dry_run || run.limit_key === null) return;
    const key = run.limit_key;
    const tripped = await withTransaction(this.deps.pool, async (client) => {
      await runStatement(client, Q.LOCK_BREAKER, [run.playbook]);
      const streak = (await runStatement<{ id: string; status: string }>(client, Q.BREAKER_STREAK, [run.playbook, key, breaker.failures])).rows;
      if (streak.length < breaker.failures || streak.some((r) => r.status !== 'failed')) return null;
      if ((await runStatement(client, Q.OPEN_PAUSE_OF, [run.playbook])).rowCount) return null;
      const runIds = streak.map((r) => r.id);
      const trip: NewEvent = { kind: 'breaker.tripped', actor: 'circuit-breaker', data: { playbook: run.playbook, key, failures: breaker.failures, runIds } };
      await this.deps.timeline.appendAutomation(client, trip);
      const reason = `circuit breaker: ${breaker.failures} failed runs in a row${key ? ` for ${key}` : ''} (last: run ${run.id}); resume when the cause is fixed`;
      await this.insertPause(client, { playbook: run.playbook, by: 'circuit-breaker', reason, source: 'circuit_breaker', runId: run.id, breakerKey: key });
      // The run's own chain says it too, so its Slack thread and timeline show why nothing else runs.
      await this.deps.timeline.lockRun(client, run.id);
      await this.deps.timeline.appendToRun(client, run.id, trip);
      return trip;
    });
    if (!tripped) return;
    this.deps.logger.warn({ playbook: run.playbook, key, runId: run.id }, 'circuit breaker tripped: playbook paused');
    await this.refresh();
    this.deps.onRunEvents?.(run.id, [tripped]);
  }

  /**
   * What the rails would do with this run if it were real (a dry run reports
   * it; nothing is counted): an alert run meets silences, pauses, cooldowns
   * and limits; a run started by hand only pauses.
   */
  async preview(plan: PlannedRun, alert: Alert | null): Promise<RailsPreview> {
    const limits = alert ? plan.definition.limits : undefined;
    const silence = alert ? await this.deps.silences?.match(alert.labels) : undefined;
    const { rows } = await runStatement<{ verdict: string | null; reason: string | null; in_window: number }>(this.deps.pool, Q.RAILS_VERDICT, [
      plan.playbook,
      plan.limitKey ?? '',
      limits?.maxRuns ?? null,
      limits?.perMs ?? null,
      limits?.cooldownMs ?? null,
      limits?.cooldownMs !== undefined ? durationText(limits.cooldownMs) : null,
      silence?.id ?? null,
    ]);
    const v = rows[0]!;
    if (v.verdict === 'suppressed' && silence) return { outcome: 'suppressed', reason: `would be suppressed: silenced by ${silence.createdBy} until ${silence.endsAt} (${silence.matchers.join(', ')}): ${silence.reason}` };
    if (v.verdict) return { outcome: v.verdict as RailsPreview['outcome'], reason: `would be ${v.verdict === 'cooldown' ? 'held by a cooldown' : v.verdict}: ${v.reason}` };
    if (limits?.maxRuns !== undefined && v.in_window >= limits.maxRuns) {
      return { outcome: 'throttled', reason: `would be throttled: ${v.in_window} run${v.in_window === 1 ? '' : 's'}${plan.limitKey ? ` for key ${plan.limitKey}` : ''} started in the last ${durationText(limits.perMs!)} (limits.max_runs ${limits.maxRuns})` };
    }
    return { outcome: 'started', reason: 'the rails would let it start' };
  }

  // ---- reading -------------------------------------------------------------------------------

  /** `GET /api/automation`: what is paused, by whom, when and why, and each playbook's rails. */
  async status(): Promise<AutomationStatus> {
    await this.refresh();
    const global = this.globalPause ?? null;
    const names = [...new Set([...this.deps.playbooks().map((p) => p.name), ...this.open.flatMap((p) => (p.playbook ? [p.playbook] : []))])].sort();
    const byName = new Map(this.deps.playbooks().map((p) => [p.name, p]));
    return {
      paused: global !== null,
      pause: global,
      pausedBy: global?.pausedBy ?? null,
      pausedAt: global?.pausedAt ?? null,
      reason: global?.reason ?? null,
      playbooks: names.map((name) => ({ ...playbookRails(byName.get(name)), name, ...this.pauseOf(name) })),
    };
  }

  /** A playbook's pause state (GET /api/playbooks uses it too). */
  pauseOf(name: string): Pick<PlaybookRails, 'paused' | 'pause' | 'pausedBy' | 'pausedAt' | 'reason'> {
    const own = this.open.find((p) => p.playbook === name) ?? null;
    const holding = own ?? this.globalPause ?? null;
    return { paused: holding !== null, pause: own, pausedBy: holding?.pausedBy ?? null, pausedAt: holding?.pausedAt ?? null, reason: holding?.reason ?? null };
  }
}

/** A playbook's limits and breaker as people write them. */
export function playbookRails(playbook: Playbook | undefined): Pick<PlaybookRails, 'limits' | 'circuitBreaker'> {
  const l = playbook?.limits;
  return {
    limits: l
      ? { key: l.key ?? null, maxRuns: l.maxRuns ?? null, per: l.perMs !== undefined ? durationText(l.perMs) : null, cooldown: l.cooldownMs !== undefined ? durationText(l.cooldownMs) : null }
      : null,
    circuitBreaker: playbook?.circuitBreaker ?? null,
  };
}
