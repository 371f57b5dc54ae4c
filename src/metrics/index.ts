/**
 * Prometheus metrics (prom-client). Counters and histograms are fed by what
 * this process does (ingest results, engine events); gauges about shared
 * state (runs by state, queue lag, Slack outbox depth) are read from Postgres
 * at scrape time, so every replica reports the same truth.
 */
import client from 'prom-client';
import type { Logger } from 'pino';
import { ALERT_OUTCOMES } from '../ingest/index.js';
import type { Pool } from '../store/index.js';
import { unhandledKind, type NewEvent } from '../timeline/index.js';

const RUNS_BY_STATE = `select status, count(*)::int as n from runs group by status`;
const QUEUE_LAG = `
  select coalesce(extract(epoch from fb_now() - min(run_at)), 0)::float8 as lag
  from runs
  where status in ('queued', 'running', 'waiting') and run_at <= fb_now()
    and (lease_expires_at is null or lease_expires_at < fb_now())`;
const OUTBOX_DEPTH = `select count(*)::int as n from slack_outbox where sent_at is null`;
const HAS_OUTBOX = `select to_regclass('slack_outbox') is not null as present`;

export interface Metrics {
  registry: client.Registry;
  alertsReceived(source: string, alerts: Array<{ status: string }>, newEpisodes: number): void;
  runEvents(runId: string, events: NewEvent[]): void;
  leaseTakeover(): void;
  /** What became of alerts (docs/safety-rails.md): started, deduplicated, throttled, ... per playbook. */
  alertOutcomes(outcomes: ReadonlyArray<{ playbook: string | null; outcome: string }>): void;
  /** The open pauses (playbook null: all automation). */
  automationPaused(pauses: ReadonlyArray<{ playbook: string | null }>): void;
  render(): Promise<{ contentType: string; body: string }>;
}

export interface MetricSources {
  /** How many runs are stuck now (the engine computes it on the database clock). */
  stuckRuns?: () => Promise<number>;
}

export function createMetrics(pool: Pool, logger: Logger, sources: MetricSources = {}): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'firebreak_process_' });

  const alerts = new client.Counter({ name: 'firebreak_alerts_received_total', help: 'Alerts received in webhook notifications', labelNames: ['source', 'status'], registers: [registry] });
  const episodes = new client.Counter({ name: 'firebreak_alert_episodes_total', help: 'New alert episodes (source + fingerprint + startsAt) stored', labelNames: ['source'], registers: [registry] });
  const stepDuration = new client.Histogram({
    name: 'firebreak_step_duration_seconds',
    help: 'Duration of finished steps by action and result',
    labelNames: ['action', 'result'],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800],
    registers: [registry],
  });
  const decisions = new client.Counter({ name: 'firebreak_policy_decisions_total', help: 'firebreak/decision results', labelNames: ['result'], registers: [registry] });
  const approvalWait = new client.Histogram({
    name: 'firebreak_approval_wait_seconds',
    help: 'Time from approval requested to decided',
    labelNames: ['outcome'],
    buckets: [5, 15, 30, 60, 120, 300, 600, 1800, 3600, 14400],
    registers: [registry],
  });
  const runsFinished = new client.Counter({ name: 'firebreak_runs_finished_total', help: 'Runs finished by this process', labelNames: ['status'], registers: [registry] });
  const takeovers = new client.Counter({ name: 'firebreak_lease_takeovers_total', help: 'Runs claimed after another worker lease expired', registers: [registry] });
  const outcomes = new client.Counter({ name: 'firebreak_alert_outcomes_total', help: 'What became of firing alerts, per playbook matched (started, deduplicated, throttled, cooldown, suppressed, paused, no_match)', labelNames: ['outcome', 'playbook'], registers: [registry] });
  for (const outcome of ALERT_OUTCOMES) outcomes.inc({ outcome, playbook: '' }, 0);
  const paused = new client.Gauge({ name: 'firebreak_automation_paused', help: 'Open pauses of automation (playbook "*": all automation), as this replica last read them', labelNames: ['playbook'], registers: [registry] });
  paused.set({ playbook: '*' }, 0);

  const runsByState = new client.Gauge({ name: 'firebreak_runs', help: 'Runs by state (all replicas)', labelNames: ['status'], registers: [registry] });
  const queueLag = new client.Gauge({ name: 'firebreak_queue_lag_seconds', help: 'Age of the oldest runnable run nobody holds', registers: [registry] });
  const outboxDepth = new client.Gauge({ name: 'firebreak_slack_outbox_depth', help: 'Slack messages waiting to be sent', registers: [registry] });
  const runsStuck = new client.Gauge({ name: 'firebreak_runs_stuck', help: 'Runs that stopped making progress (GET /api/runs?stuck=true), all replicas', registers: [registry] });

  async function refreshGauges(): Promise<void> {
    const [states, lag, hasOutbox] = await Promise.all([pool.query(RUNS_BY_STATE), pool.query(QUEUE_LAG), pool.query(HAS_OUTBOX)]);
    runsByState.reset();
    for (const s of ['queued', 'running', 'waiting', 'succeeded', 'failed', 'aborted', 'cancelled']) runsByState.set({ status: s }, 0);
    for (const row of states.rows) runsByState.set({ status: row.status }, row.n);
    queueLag.set(Number(lag.rows[0]?.lag ?? 0));
    if (hasOutbox.rows[0]?.present) outboxDepth.set((await pool.query(OUTBOX_DEPTH)).rows[0]?.n ?? 0);
    if (sources.stuckRuns) runsStuck.set(await sources.stuckRuns());
  }

  return {
    registry,
    alertsReceived(source, received, newEpisodes) {
      for (const a of received) alerts.inc({ source, status: a.status });
      if (newEpisodes > 0) episodes.inc({ source }, newEpisodes);
    },
    runEvents(_runId, events) {
      for (const e of events) {
        switch (e.kind) {
          case 'step.succeeded':
          case 'step.failed':
            if (typeof e.data.durationMs === 'number') {
              stepDuration.observe({ action: String(e.data.action ?? 'unknown'), result: e.kind === 'step.succeeded' ? 'succeeded' : 'failed' }, e.data.durationMs / 1000);
            }
            break;
          case 'policy.decision':
            decisions.inc({ result: e.data.allow ? (e.data.requireApproval ? 'approval' : 'allow') : 'deny' });
            break;
          case 'approval.granted':
          case 'approval.rejected':
            if (typeof e.data.waitedMs === 'number') approvalWait.observe({ outcome: e.kind === 'approval.granted' ? 'approved' : 'rejected' }, e.data.waitedMs / 1000);
            break;
          case 'run.succeeded':
          case 'run.failed':
          case 'run.aborted':
          case 'run.cancelled':
            runsFinished.inc({ status: e.kind.slice(4) });
            break;
          case 'run.created':
          case 'run.queued':
          case 'run.started':
          case 'run.abort_requested':
          case 'run.abort_allowed':
          case 'run.abort_refused':
          case 'alert.resolved':
          case 'approval.requested':
          case 'approval.escalated':
          case 'approval.vote':
          case 'approval.refused':
          case 'approval.expired':
          case 'approval.cancelled':
          case 'step.started':
          case 'step.resumed':
          case 'step.polled':
          case 'step.would_call':
          case 'step.retrying':
          case 'step.skipped':
          case 'step.denied':
          case 'compensation.started':
          case 'compensation.succeeded':
          case 'compensation.failed':
          case 'access.allowed':
          case 'access.denied':
          case 'token.created':
          case 'token.revoked':
          case 'session.started':
          case 'session.ended':
          case 'automation.paused':
          case 'automation.resumed':
          case 'breaker.tripped':
          case 'silence.created':
          case 'silence.expired':
          case 'repair.retried':
          case 'repair.cancelled':
          case 'run.retried':
          case 'run.held':
          case 'run.stuck':
            break;
          default:
            unhandledKind(e, undefined);
        }
      }
    },
    alertOutcomes(list) {
      for (const o of list) outcomes.inc({ outcome: o.outcome, playbook: o.playbook ?? '' });
    },
    automationPaused(pauses) {
      paused.reset();
      paused.set({ playbook: '*' }, 0);
      for (const p of pauses) paused.set({ playbook: p.playbook ?? '*' }, 1);
    },
    leaseTakeover() {
      takeovers.inc();
    },
    async render() {
      try {
        await refreshGauges();
      } catch (err) {
        // Serve what this process knows; the gauges keep their last values.
        logger.warn({ err: (err as Error).message }, 'metrics: cannot read shared gauges from the database');
      }
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
