import type { Logger } from 'pino';
import type { PlannedRun, RunHooks } from '../engine/index.js';
import { runStatement, withTransaction, type DatabaseClock, type Pool, type Queryable } from '../store/index.js';
import { durationText } from '../playbooks/index.js';
import { eventRecords, type Timeline } from '../timeline/index.js';
import { GroupCommit } from './group-commit.js';
import { LOCK_LIMIT_KEYS, OPEN_EPISODE_START, STORE_NOTIFICATIONS } from './queries.js';
import type { Alert, AlertSource } from './types.js';

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

/** What became of a firing alert, per playbook it matched (docs/safety-rails.md). */
export type AlertOutcomeKind = 'started' | 'deduplicated' | 'throttled' | 'cooldown' | 'suppressed' | 'paused' | 'no_match';
export const ALERT_OUTCOMES: readonly AlertOutcomeKind[] = ['started', 'deduplicated', 'throttled', 'cooldown', 'suppressed', 'paused', 'no_match'];

export interface AlertOutcome {
  /** null for `no_match`. */
  playbook: string | null;
  outcome: AlertOutcomeKind;
  runId: string | null;
  reason: string;
}

/** The active silence an alert falls under, if any (src/rails SilenceCache). */
export interface SilenceLookup {
  match(labels: Record<string, string>): Promise<{ id: string; matchers: string[]; createdBy: string; reason: string; endsAt: string } | undefined>;
}

export interface IngestResult {
  /** False when a vendor delivery id was seen before: nothing was written. */
  stored: boolean;
  notificationId: number | null;
  episodes: EpisodeResult[];
  /** Runs started by this notification or already running for its episodes. */
  runs: string[];
  startedRuns: string[];
  /** One per firing alert and playbook it matched (one `no_match` when none did). */
  outcomes: AlertOutcome[];
}

export interface Notification {
  source: AlertSource;
  alerts: Array<Alert & { startsAtKnown?: boolean }>;
  payload: unknown;
  deliveryId?: string;
}

/** A notification ready to store: its alerts deduplicated and the runs they start planned. */
export interface PreparedNotification {
  source: AlertSource;
  deliveryId: string | null;
  alerts: Alert[];
  payload: unknown;
  planned: Array<{ alert: Alert; run: PlannedRun; silence: { id: string; text: string } | null }>;
  /** What it touches, so a group never holds two notifications upserting one row. */
  keys: string[];
}

interface StoredRow {
  n: number;
  notification_id: number;
  now: Date;
  episodes: Array<Omit<EpisodeResult, 'startsAt'> & { startsAt: string }>;
  outcomes: AlertOutcome[];
}

/**
 * Accept a normalised notification: everything is durably stored (and the
 * runs it starts created) before this resolves; callers answer 202 after it.
 * Firing notifications arriving together are stored by one statement (group
 * commit); a resolve, which also touches its episode's runs, has a
 * transaction of its own.
 */
export class Ingestor {
  private readonly listeners: Array<(notification: Notification, result: IngestResult) => void> = [];
  private readonly group: GroupCommit<PreparedNotification, IngestResult>;
  private readonly silences: SilenceLookup | undefined;

  /** Told after every stored notification (metrics, waking local workers). */
  onStored(listener: (notification: Notification, result: IngestResult) => void): void {
    this.listeners.push(listener);
  }

  constructor(
    private readonly pool: Pool,
    private readonly timeline: Timeline,
    private readonly runs: RunHooks,
    private readonly logger: Logger,
    options: { maxInFlight?: number; maxGroup?: number; silences?: SilenceLookup } = {},
  ) {
    this.silences = options.silences;
    this.group = new GroupCommit({
      store: (items) => this.storeCounted(items),
      keys: (item) => item.keys,
      weight: (item) => item.alerts.length,
      maxInFlight: options.maxInFlight ?? 4,
      maxGroup: options.maxGroup ?? 256,
      logger,
    });
  }

  private get clock(): DatabaseClock {
    return this.timeline.clock;
  }

  async ingest(notification: Notification): Promise<IngestResult> {
    const prepared = await this.prepare(notification);
    const hasResolve = prepared.alerts.some((a) => a.status === 'resolved');
    const result = hasResolve ? await this.storeWithResolves(prepared) : await this.group.submit(prepared);
    for (const listener of this.listeners) listener(notification, result);
    return result;
  }

  /** Generic alerts without startsAt belong to the open episode of their fingerprint, if any; runs are planned. */
  private async prepare(notification: Notification): Promise<PreparedNotification> {
    const resolved = await Promise.all(
      notification.alerts.map(async ({ startsAtKnown, ...alert }) => {
        if (startsAtKnown !== false) return alert;
        const { rows } = await runStatement<{ starts_at: Date }>(this.pool, OPEN_EPISODE_START, [alert.source, alert.fingerprint]);
        return rows[0] ? { ...alert, startsAt: rows[0].starts_at.toISOString() } : alert;
      }),
    );
    // The same alert twice in one notification would make the upsert touch a row twice; keep the last.
    const byEpisode = new Map<string, Alert>();
    for (const alert of resolved) byEpisode.set(`${alert.fingerprint}\u0000${alert.startsAt}`, alert);
    const alerts = [...byEpisode.values()];
    const planned: PreparedNotification['planned'] = [];
    for (const alert of alerts) {
      if (alert.status !== 'firing') continue;
      const runs = await this.runs.plan(alert);
      // Stored anyway, recorded as `suppressed`; the statement re-checks that the silence is still active.
      const match = runs.length > 0 ? await this.silences?.match(alert.labels) : undefined;
      const silence = match ? { id: match.id, text: `silenced by ${match.createdBy} until ${match.endsAt} (${match.matchers.join(', ')}, silence ${match.id}): ${match.reason}` } : null;
      for (const run of runs) planned.push({ alert, run, silence });
    }
    const keys = alerts.map((a) => `${notification.source}\u0000${a.fingerprint}\u0000${new Date(a.startsAt).toISOString()}`);
    if (notification.deliveryId) keys.push(`delivery\u0000${notification.source}\u0000${notification.deliveryId}`);
    return { source: notification.source, deliveryId: notification.deliveryId ?? null, alerts, payload: notification.payload, planned, keys };
  }

  /**
   * A group that starts runs of playbooks with `limits.max_runs` counts them
   * under the keys' advisory locks (taken before the statement's snapshot, so
   * a replica storing at the same moment waits and then sees these runs);
   * otherwise it is the one statement alone.
   */
  private async storeCounted(items: readonly PreparedNotification[]): Promise<IngestResult[]> {
    const keys = limitLocks(items);
    if (keys.length === 0) return this.storeGroup(this.pool, items);
    return withTransaction(this.pool, async (client) => {
      await runStatement(client, LOCK_LIMIT_KEYS, [keys]);
      return this.storeGroup(client, items);
    });
  }

  /** One statement for a group of notifications; one result per item (undefined: a duplicate delivery, nothing written). */
  private async storeGroup(db: Queryable, items: readonly PreparedNotification[]): Promise<IngestResult[]> {
    // JSON text built around pre-serialised, redacted payloads: the payload and each alert are serialised once.
    const json = this.timeline.redactJson;
    const record = (fields: Record<string, unknown>, raw: Record<string, string>) =>
      `{${[...Object.entries(fields).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v ?? null)}`), ...Object.entries(raw).map(([k, v]) => `${JSON.stringify(k)}:${v}`)].join(',')}}`;
    const notifications = `[${items.map((item, n) => record({ n, source: item.source, delivery_id: item.deliveryId, alert_count: item.alerts.length }, { payload: json(item.payload) })).join(',')}]`;
    const alertJson = new Map<Alert, string>();
    const alertText = (a: Alert) => alertJson.get(a) ?? alertJson.set(a, json(a)).get(a)!;
    const alerts = `[${items
      .flatMap((item, n) =>
        item.alerts.map((a) =>
          record({ n, fingerprint: a.fingerprint, starts_at: a.startsAt, status: a.status, ends_at: a.endsAt, summary: a.summary, severity: a.severity, generator_url: a.generatorURL }, { alert: alertText(a) }),
        ),
      )
      .join(',')}]`;
    const runs = `[${items
      .flatMap((item, n) =>
        item.planned.map(({ alert, run, silence }) =>
          record(
            { n, run_id: run.runId, fingerprint: alert.fingerprint, starts_at: alert.startsAt, playbook: run.playbook, revision: run.revision, playbook_hash: run.playbookHash, concurrency_key: run.concurrencyKey, concurrency_limit: run.concurrencyLimit, channel: run.channel, ...railsFields(run, silence) },
            { alert: alertText(alert) },
          ),
        ),
      )
      .join(',')}]`;
    const genesis = items.flatMap((item) => item.planned.flatMap(({ run }) => eventRecords(this.timeline.link(run.runId, null, run.genesis))));
    const sent = Date.now();
    const { rows } = await runStatement<StoredRow>(db, STORE_NOTIFICATIONS, [notifications, alerts, runs, JSON.stringify(genesis)]);
    this.clock.observe(rows[0]?.now, sent, Date.now());
    const byN = new Map(rows.map((r) => [r.n, r]));
    return items.map((_, n) => {
      const row = byN.get(n);
      if (!row) return { stored: false, notificationId: null, episodes: [], runs: [], startedRuns: [], outcomes: [] };
      const episodes: EpisodeResult[] = row.episodes.map((e) => ({ ...e, startsAt: new Date(e.startsAt).toISOString() }));
      const startedRuns = episodes.flatMap((e) => e.newRuns);
      const allRuns = [...new Set([...episodes.flatMap((e) => e.existingRuns), ...startedRuns])];
      if (startedRuns.length > 0) this.logger.debug({ runs: startedRuns }, 'runs started');
      return { stored: true, notificationId: row.notification_id, episodes, runs: allRuns, startedRuns, outcomes: row.outcomes };
    });
  }

  /** A resolve tells its episodes' runs (engine transitions) in the transaction that stores it. */
  private async storeWithResolves(item: PreparedNotification): Promise<IngestResult> {
    let written: Array<{ runId: string; events: Parameters<RunHooks['emit']>[1] }> = [];
    const result = await withTransaction(this.pool, async (client) => {
      const keys = limitLocks([item]);
      if (keys.length > 0) await runStatement(client, LOCK_LIMIT_KEYS, [keys]);
      const [stored] = await this.storeGroup(client, [item]);
      const resolved = stored!.episodes.filter((e) => e.resolvedNow && e.existingRuns.length > 0);
      if (resolved.length > 0) written = await this.runs.resolved(client, resolved);
      return stored!;
    });
    for (const w of written) this.runs.emit(w.runId, w.events);
    return result;
  }
}

/** The rails' inputs of a planned alert run, as the store statement reads them. */
function railsFields(run: PlannedRun, silence: { id: string; text: string } | null): Record<string, unknown> {
  const limits = run.definition.limits;
  return {
    limit_key: run.limitKey,
    max_runs: limits?.maxRuns ?? null,
    per_ms: limits?.perMs ?? null,
    per_text: limits?.perMs !== undefined ? durationText(limits.perMs) : null,
    cooldown_ms: limits?.cooldownMs ?? null,
    cooldown_text: limits?.cooldownMs !== undefined ? durationText(limits.cooldownMs) : null,
    silence_id: silence?.id ?? null,
    silence_text: silence?.text ?? null,
  };
}

/** The advisory-lock keys of the counted (playbook, key) pairs in these items, sorted. */
function limitLocks(items: readonly PreparedNotification[]): string[] {
  const keys = new Set<string>();
  for (const item of items) {
    for (const { run } of item.planned) if (run.definition.limits?.maxRuns !== undefined && run.limitKey !== null) keys.add(`${run.playbook}\u001f${run.limitKey}`);
  }
  return [...keys].sort();
}
