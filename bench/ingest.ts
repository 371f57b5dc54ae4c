/**
 * Ingest: POST /hooks/alertmanager on the real app (startApp, in process,
 * FIREBREAK_WORKERS=0 so only ingest runs) against a real Postgres server,
 * driven by a load thread with `CONNECTIONS` keep-alive connections.
 * Bare limit: single-row INSERT commits/s through `pg` with the same number
 * of connections, on the same server, in the same run.
 *
 * Variants:
 * - new episodes, playbooks that do not match (the shipped samples): the
 *   notification and its episode in one statement.
 * - repeat-heavy (90% re-sends of 256 firing alerts): episode upserts that
 *   bump `deliveries` on hot rows.
 * - new episodes, a playbook that matches: every new episode also creates a
 *   run and its hashed genesis timeline event in the same statement.
 */
import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import type { App } from '../src/app/index.js';
import { alertmanagerNotification, BENCH_ALERTNAME, type Variant } from './alerts.js';
import { bareInserts, type BareInsertResult } from './bare.js';
import { BackendCpu, log, mainThreadCpuMs, notePlaybook, pct, ROOT, round, roundTripCount, sortedCopy, startBenchApp, tempPlaybooks, type Row } from './common.js';
import type { LoadRequest, LoadResult } from './load-worker.js';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const WARMUP_MS = 1_500;
const DURATION_MS = Number(process.env.BENCH_INGEST_MS ?? 8_000);
const BARE_MS = 4_000;

function runLoad(request: LoadRequest): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./load-worker.js', import.meta.url), { workerData: request });
    worker.once('message', (m: { ok: boolean; result?: LoadResult; error?: string }) => (m.ok ? resolve(m.result!) : reject(new Error(m.error))));
    worker.once('error', reject);
  });
}

interface VariantResult {
  label: string;
  load: LoadResult;
  perS: number;
  p50: number;
  p99: number;
  stored: { notifications: number; episodes: number; runs: number; events: number };
  roundTripsPerNotification: number;
  eventLoopUtilization: number;
  appMsPerNotification: number;
  processCpuMsPerNotification: number;
  /** CPU ms per notification: the app's thread, and the Postgres backends serving it. */
  appCpuMs: number;
  pgCpuMs: number;
}

async function counts(pool: pg.Pool) {
  const { rows } = await pool.query<{ notifications: number; episodes: number; runs: number; events: number }>(`select
    (select count(*) from alert_notifications)::int as notifications, (select count(*) from alert_episodes)::int as episodes,
    (select count(*) from runs)::int as runs, (select count(*) from timeline_events)::int as events`);
  return rows[0]!;
}

async function measureVariant(app: App, label: string, variant: Variant, prefix: string, matching: boolean): Promise<VariantResult> {
  const before = await counts(app.store.pool);
  const monitor = new pg.Pool({ connectionString: app.store.url, max: 1 });
  const backends = new BackendCpu(monitor, decodeURIComponent(new URL(app.store.url).pathname.slice(1)));
  await backends.start();
  const thread0 = mainThreadCpuMs();
  const trips0 = roundTripCount();
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const load = await runLoad({ origin: app.url, path: '/hooks/alertmanager', connections: CONNECTIONS, warmupMs: WARMUP_MS, durationMs: DURATION_MS, variant, prefix });
  const trips = roundTripCount() - trips0;
  // The app's event loop (this thread; the load generator has its own): how busy it was, and its time per notification.
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  const appThreadMs = mainThreadCpuMs() - thread0;
  const pgMs = await backends.elapsed();
  await monitor.end();
  const after = await counts(app.store.pool);
  const stored = {
    notifications: after.notifications - before.notifications,
    episodes: after.episodes - before.episodes,
    runs: after.runs - before.runs,
    events: after.events - before.events,
  };
  // Durability check: every 202 is a stored notification; with a matching playbook every new episode has its run.
  if (stored.notifications !== load.total202) throw new Error(`ingest ${label}: ${load.total202} answered 202 but ${stored.notifications} notifications stored`);
  if (matching && stored.runs !== stored.episodes) throw new Error(`ingest ${label}: ${stored.episodes} new episodes but ${stored.runs} runs`);
  if (!matching && stored.runs !== 0) throw new Error(`ingest ${label}: non-matching playbooks started ${stored.runs} runs`);
  const sorted = sortedCopy(load.latenciesMs);
  const result = {
    label,
    load,
    perS: load.accepted / load.windowS,
    p50: pct(sorted, 50),
    p99: pct(sorted, 99),
    stored,
    roundTripsPerNotification: trips / Math.max(1, load.total202),
    eventLoopUtilization: elu.utilization,
    appMsPerNotification: elu.active / Math.max(1, load.total202),
    processCpuMsPerNotification: (cpu.user + cpu.system) / 1000 / Math.max(1, load.total202),
    appCpuMs: appThreadMs / Math.max(1, load.total202),
    pgCpuMs: pgMs / Math.max(1, load.total202),
  };
  log(
    `ingest ${label}: ${round(result.perS, 0)}/s accepted, p50 ${round(result.p50)} ms, p99 ${round(result.p99)} ms; ` +
      `other statuses ${JSON.stringify(load.otherStatus)}, errors ${load.errors}; stored ${JSON.stringify(stored)}; ` +
      `${round(result.roundTripsPerNotification, 2)} db round trips per notification; app event loop ${round(100 * elu.utilization, 0)}% busy, ` +
      `${round(result.appMsPerNotification, 2)} ms of it per notification; CPU per notification: app thread ${round(result.appCpuMs, 2)} ms, ` +
      `postgres ${round(result.pgCpuMs, 2)} ms, whole process ${round(result.processCpuMsPerNotification, 2)} ms (app + load thread)`,
  );
  return result;
}

export async function benchIngest(databaseUrl: string, phase: (name: string, fn: () => Promise<void>) => Promise<void>): Promise<Row[]> {
  const samplePayload = JSON.stringify(alertmanagerNotification({ n: 1, fingerprint: 'bare0000000001', startsAt: '2026-01-01T00:00:00.000Z' }));
  const bareOnce = async (connections: number) => {
    const b = await bareInserts(databaseUrl, { connections, warmupMs: 500, durationMs: BARE_MS, payload: samplePayload });
    log(
      `bare INSERT x${connections}: ${round(b.commitsPerS, 0)} commits/s, p50 ${round(b.p50)} ms, p99 ${round(b.p99)} ms (${b.commits} commits); ` +
        `CPU per commit: pg client ${round(b.clientCpuMs, 3)} ms, postgres ${round(b.pgCpuMs, 3)} ms`,
    );
    return b;
  };
  let barePoolSize!: BareInsertResult;
  const results: Array<VariantResult & { bare: BareInsertResult }> = [];
  let appPoolSize = 0;

  await phase('bare-pool-size', async () => {
    barePoolSize = await bareOnce(10);
  });

  // Each variant right after its own bare measurement, so both see the box in the same state.
  await phase('ingest', async () => {
    // Shipped sample playbooks: real matchers, none of which matches the bench alert.
    const nonMatching = await startBenchApp({ databaseUrl, playbooksDir: `${ROOT}/playbooks`, workers: 0 });
    appPoolSize = nonMatching.store.pool.options.max ?? 0;
    try {
      let bare = await bareOnce(CONNECTIONS);
      results.push({ ...(await measureVariant(nonMatching, 'new episodes, no playbook matches', 'new', 'a0', false)), bare });
      bare = await bareOnce(CONNECTIONS);
      results.push({ ...(await measureVariant(nonMatching, 'repeat-heavy (90% re-sends), no playbook matches', 'repeat', 'b0', false)), bare });
    } finally {
      await nonMatching.stop();
    }
    // The shipped samples plus a 10-step playbook that matches every bench alert: one run per new episode.
    const folder = await tempPlaybooks({ 'bench-ingest.yaml': notePlaybook('bench-ingest', BENCH_ALERTNAME, 10) }, true);
    const matching = await startBenchApp({ databaseUrl, playbooksDir: folder.dir, workers: 0 });
    try {
      const bare = await bareOnce(CONNECTIONS);
      results.push({ ...(await measureVariant(matching, 'new episodes, a playbook matches (run + genesis event each)', 'new', 'c0', true)), bare });
    } finally {
      await matching.stop();
      await folder.remove();
    }
  });

  const rows: Row[] = [];
  for (const r of results) {
    const statuses = Object.keys(r.load.otherStatus).length > 0 ? `; non-202: ${JSON.stringify(r.load.otherStatus)}` : '';
    rows.push(
      {
        name: `ingest: ${r.label}`,
        value: round(r.perS, 0),
        unit: 'notifications/s',
        bare: round(r.bare.commitsPerS, 0),
        ratio: round(r.perS / r.bare.commitsPerS, 3),
        note:
          `${CONNECTIONS} connections, ${DURATION_MS / 1000} s after ${WARMUP_MS / 1000} s warm-up, ${r.load.sampleBytes}-byte bodies; every 202 checked stored ` +
          `(${r.stored.notifications} notifications, ${r.stored.episodes} new episodes, ${r.stored.runs} runs); ` +
          `app pool ${appPoolSize} connections; ${round(r.roundTripsPerNotification, 2)} db round trips/notification; ` +
          `app event loop ${round(100 * r.eventLoopUtilization, 0)}% busy; CPU per notification: app thread ${round(r.appCpuMs, 2)} ms + postgres ${round(r.pgCpuMs, 2)} ms ` +
          `(bare: pg client ${round(r.bare.clientCpuMs, 3)} ms + postgres ${round(r.bare.pgCpuMs, 3)} ms per commit), so even with all ${cpus().length} cores free ` +
          `the server side tops out near ${round((cpus().length * 1000) / (r.appCpuMs + r.pgCpuMs), 0)}/s (bare ${round((cpus().length * 1000) / (r.bare.clientCpuMs + r.bare.pgCpuMs), 0)}/s)${statuses}; ` +
          `bare (measured just before) = single-row INSERT of the same-size jsonb, autocommit, ${CONNECTIONS} pg connections`,
      },
      { name: `ingest: ${r.label} p50`, value: round(r.p50), unit: 'ms', bare: round(r.bare.p50), ratio: round(r.p50 / r.bare.p50, 2) },
      { name: `ingest: ${r.label} p99`, value: round(r.p99), unit: 'ms', bare: round(r.bare.p99), ratio: round(r.p99 / r.bare.p99, 2) },
    );
  }
  const bareAll = results.map((r) => r.bare.commitsPerS);
  const bareMean = bareAll.reduce((a, b) => a + b, 0) / Math.max(1, bareAll.length);
  rows.push({
    name: 'bare INSERT with 10 connections (the app pool size)',
    value: round(barePoolSize.commitsPerS, 0),
    unit: 'commits/s',
    bare: round(bareMean, 0),
    ratio: round(barePoolSize.commitsPerS / bareMean, 3),
    note: `context: what a ${appPoolSize}-connection pool can get out of this server, vs the mean of the ${CONNECTIONS}-connection bare runs above`,
  });
  return rows;
}
