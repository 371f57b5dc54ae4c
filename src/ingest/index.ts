import type { Logger } from 'pino';
import type { NewEvent, Timeline } from '../timeline/index.js';
import { withTransaction, type Pool, type Queryable } from '../store/index.js';
import type { Alert, AlertSource } from './types.js';
import {
  CANCEL_PENDING_APPROVALS,
  NOTIFY_RUNNABLE,
  OPEN_EPISODE_START,
  REQUEST_ABORT,
  RUNS_OF_EPISODES,
  STORE_NOTIFICATION,
  WAKE_RUN,
} from './queries.js';

export type { Alert, AlertSource } from './types.js';
export { ALERT_SOURCES } from './types.js';
export { alertmanagerPayload, normaliseAlertmanager } from './sources/alertmanager.js';
export { genericPayload, normaliseGeneric } from './sources/generic.js';
export { grafanaPayload, normaliseGrafana, grafanaSignature, verifyGrafanaSignature } from './sources/grafana.js';
export {
  pagerdutyPayload,
  normalisePagerDuty,
  pagerdutySignature,
  verifyPagerDutySignature,
  PAGERDUTY_DEADLINE_MS,
  PAGERDUTY_DELIVERY_HEADER,
  PAGERDUTY_SIGNATURE_HEADER,
} from './sources/pagerduty.js';
export { datadogPayload, normaliseDatadog, DATADOG_TEMPLATE } from './sources/datadog.js';
export { parseJsonBody, parseWith, zodProblems } from './validate.js';
export { fingerprintOf } from './sources/common.js';

/** A run to create for a newly seen firing alert, worked out by the engine from the playbooks. */
export interface PlannedRun {
  runId: string;
  playbook: string;
  definition: unknown;
  playbookHash: string;
  concurrencyKey: string | null;
  concurrencyLimit: number | null;
  channel: string | null;
  /** First events of the run's timeline (run.created ...). */
  genesis: NewEvent[];
}

export type RunPlanner = (alert: Alert) => PlannedRun[];

export interface EpisodeResult {
  id: number;
  fingerprint: string;
  startsAt: string;
  status: 'firing' | 'resolved';
  deliveries: number;
  resolvedNow: boolean;
  newRuns: string[];
  existingRuns: string[];
}

export interface IngestResult {
  /** False when a vendor delivery id was seen before: nothing was written. */
  stored: boolean;
  notificationId: number | null;
  episodes: EpisodeResult[];
  /** Runs started by this notification or already running for its episodes. */
  runs: string[];
  startedRuns: string[];
}

export interface Notification {
  source: AlertSource;
  alerts: Array<Alert & { startsAtKnown?: boolean }>;
  payload: unknown;
  deliveryId?: string;
}

/**
 * Accept a normalised notification: everything is durably stored (and the
 * runs it starts created) before this resolves; callers answer 202 after it.
 */
export class Ingestor {
  private readonly listeners: Array<(notification: Notification, result: IngestResult) => void> = [];

  /** Told after every stored notification (metrics, waking local workers). */
  onStored(listener: (notification: Notification, result: IngestResult) => void): void {
    this.listeners.push(listener);
  }

  constructor(
    private readonly pool: Pool,
    private readonly timeline: Timeline,
    private readonly planRuns: RunPlanner,
    private readonly logger: Logger,
  ) {}

  async ingest(notification: Notification): Promise<IngestResult> {
    const alerts = await this.resolveOpenEpisodes(notification);
    const hasResolve = alerts.some((a) => a.status === 'resolved');
    // Firing-only notifications (the hot path) are one autocommitted statement;
    // a resolve also touches the runs of its episodes, in one transaction.
    const result = hasResolve
      ? await withTransaction(this.pool, async (client) => {
          const stored = await this.store(client, notification, alerts);
          await this.applyResolves(client, stored.episodes);
          return stored;
        })
      : await this.store(this.pool, notification, alerts);
    for (const listener of this.listeners) listener(notification, result);
    return result;
  }

  /** Generic alerts without startsAt belong to the open episode of their fingerprint, if any. */
  private async resolveOpenEpisodes(notification: Notification): Promise<Alert[]> {
    return Promise.all(
      notification.alerts.map(async ({ startsAtKnown, ...alert }) => {
        if (startsAtKnown !== false) return alert;
        const { rows } = await this.pool.query<{ starts_at: Date }>(OPEN_EPISODE_START, [alert.source, alert.fingerprint]);
        return rows[0] ? { ...alert, startsAt: rows[0].starts_at.toISOString() } : alert;
      }),
    );
  }

  private async store(db: Queryable, notification: Notification, allAlerts: Alert[]): Promise<IngestResult> {
    // The same alert twice in one notification would make the upsert touch a row twice; keep the last.
    const byEpisode = new Map<string, Alert>();
    for (const alert of allAlerts) byEpisode.set(`${alert.fingerprint}\u0000${alert.startsAt}`, alert);
    const alerts = [...byEpisode.values()];
    const clean = (v: unknown) => JSON.stringify(this.timeline.redact(v));
    const planned = alerts.flatMap((alert) => (alert.status === 'firing' ? this.planRuns(alert).map((run) => ({ alert, run })) : []));
    const genesis = planned.flatMap(({ run }) => this.timeline.genesisForRun(run.runId, run.genesis));
    // A named statement: Postgres plans this CTE once per connection instead of on every notification.
    const { rows } = await db.query<{ notification_id: number | null; episodes: Array<Omit<EpisodeResult, 'startsAt'> & { startsAt: string }> }>({
      name: 'firebreak_store_notification',
      text: STORE_NOTIFICATION,
      values: [
        notification.source,
        notification.deliveryId ?? null,
        alerts.length,
        clean(notification.payload),
        JSON.stringify(
          alerts.map((a) => ({
            fingerprint: a.fingerprint,
            starts_at: a.startsAt,
            status: a.status,
            ends_at: a.endsAt,
            summary: a.summary,
            severity: a.severity,
            generator_url: a.generatorURL,
            alert: this.timeline.redact(a),
          })),
        ),
        JSON.stringify(
          planned.map((p) => ({
            run_id: p.run.runId,
            fingerprint: p.alert.fingerprint,
            starts_at: p.alert.startsAt,
            playbook: p.run.playbook,
            definition: p.run.definition,
            playbook_hash: p.run.playbookHash,
            concurrency_key: p.run.concurrencyKey,
            concurrency_limit: p.run.concurrencyLimit,
            channel: p.run.channel,
            alert: this.timeline.redact(p.alert),
          })),
        ),
        JSON.stringify(
          genesis.map((g) => ({
            chain_id: g.chainId,
            seq: g.seq,
            run_id: g.runId,
            time: g.time,
            kind: g.kind,
            actor: g.actor,
            data: g.data,
            prev_hash: g.prevHash,
            hash: g.hash,
          })),
        ),
      ],
    });
    const row = rows[0]!;
    const episodes: EpisodeResult[] = row.episodes.map((e) => ({ ...e, startsAt: new Date(e.startsAt).toISOString() }));
    const startedRuns = episodes.flatMap((e) => e.newRuns);
    const runs = [...new Set([...episodes.flatMap((e) => e.existingRuns), ...startedRuns])];
    if (startedRuns.length > 0) this.logger.debug({ runs: startedRuns }, 'runs started');
    return { stored: row.notification_id !== null, notificationId: row.notification_id, episodes, runs, startedRuns };
  }

  /** Write the resolve to each run's timeline, cancel its pending approvals, and apply `on_resolved`. */
  private async applyResolves(db: Queryable, episodes: EpisodeResult[]): Promise<void> {
    const resolved = episodes.filter((e) => e.resolvedNow && e.existingRuns.length > 0);
    if (resolved.length === 0) return;
    const { rows: runs } = await db.query<{ id: string; status: string; on_resolved: string; episode_id: number }>(RUNS_OF_EPISODES, [
      resolved.map((e) => e.id),
    ]);
    for (const run of runs) {
      const episode = resolved.find((e) => e.id === run.episode_id)!;
      // Take the run's chain lock before any row lock, like every run transaction does, so we never deadlock with a worker.
      await this.timeline.lockRun(db, run.id);
      const active = ['queued', 'running', 'waiting'].includes(run.status);
      const events: NewEvent[] = [
        { kind: 'alert.resolved', actor: 'system', data: { fingerprint: episode.fingerprint, startsAt: episode.startsAt, runStatus: run.status, onResolved: active ? run.on_resolved : null } },
      ];
      if (active) {
        const cancelled = await db.query<{ id: string; step_id: string }>(CANCEL_PENDING_APPROVALS, [run.id, 'system']);
        for (const approval of cancelled.rows)
          events.push({ kind: 'approval.cancelled', actor: 'system', data: { approvalId: approval.id, stepId: approval.step_id, reason: 'alert resolved' } });
        if (run.on_resolved === 'abort') {
          await db.query(REQUEST_ABORT, [run.id, 'system', 'alert resolved (on_resolved: abort)']);
          events.push({ kind: 'run.abort_requested', actor: 'system', data: { reason: 'alert resolved (on_resolved: abort)' } });
        } else {
          await db.query(WAKE_RUN, [run.id]);
        }
      }
      await this.timeline.appendToRun(db, run.id, ...events);
    }
    await db.query(NOTIFY_RUNNABLE);
  }
}
