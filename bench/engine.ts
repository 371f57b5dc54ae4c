/**
 * The durable run engine on a real Postgres server, through the real app
 * (startApp), with a playbook of 10 `note` steps.
 *
 * 1. Latency, on an idle server: one app (FIREBREAK_WORKERS=1) receives an
 *    alert on /hooks/generic and runs it; BENCH_LATENCY_RUNS (1,000)
 *    sequential alerts after a warm-up. Two figures per run, from just before
 *    the POST: the first step started (its step.started committed and
 *    emitted) and the run finished (run.succeeded committed). p50 / p99 over
 *    every sample.
 * 2. Throughput: BENCH_THROUGHPUT_RUNS (300) runs x 10 steps queued, then an
 *    app with 4 workers drains them; step transitions/s = steps that
 *    succeeded / (first run started -> last step finished, database clock).
 *    Database round trips per step are counted by wrapping the pg client
 *    (every Client.query call is one round trip: a batch of statements sent
 *    as one query counts once, as it should).
 *
 * Bare limits (bare.ts), in the same run: a job queue on 4 connections
 * (claim with SKIP LOCKED, complete; two commits per job) for throughput;
 * sequential single-row commits on one connection for latency.
 */
import { cpus } from 'node:os';
import pg from 'pg';
import type { App } from '../src/app/index.js';
import { bareClaimComplete, bareSequentialCommits } from './bare.js';
import {
  BackendCpu,
  boxLoad,
  installRoundTripCounter,
  mainThreadCpuMs,
  log,
  notePlaybook,
  pct,
  round,
  roundTripsByQuery,
  sleep,
  sortedCopy,
  startBenchApp,
  tempPlaybooks,
  xactCommits,
  type Row,
} from './common.js';

const STEPS = 10;
const LATENCY_RUNS = Number(process.env.BENCH_LATENCY_RUNS ?? 1_000);
const WARMUP_RUNS = 20;
const THROUGHPUT_RUNS = Number(process.env.BENCH_THROUGHPUT_RUNS ?? 300);
const THROUGHPUT_WORKERS = 4;
/** Time boxes, so a slow engine cannot stretch the bench past a few minutes; a cut-short phase says so. */
const LATENCY_BOX_MS = 150_000;
const THROUGHPUT_BOX_MS = 60_000;
const PLAYBOOK = 'bench-steps';
const ALERTNAME = 'FirebreakBenchRun';

/** When each run's first step started and when the run ended, as the worker emitted them (after their commits). */
class Landmarks {
  private readonly seen = new Map<string, { first?: number; end?: { at: number; kind: string } }>();
  private readonly waiting = new Map<string, () => void>();

  attach(app: App): void {
    app.engine.onEvent((runId, events) => {
      const at = performance.now();
      const entry = this.seen.get(runId) ?? {};
      for (const e of events) {
        if (e.kind === 'step.started' && entry.first === undefined) entry.first = at;
        if (e.kind === 'run.succeeded' || e.kind === 'run.failed' || e.kind === 'run.aborted') entry.end = { at, kind: e.kind };
      }
      this.seen.set(runId, entry);
      if (entry.end) {
        this.waiting.get(runId)?.();
        this.waiting.delete(runId);
      }
    });
  }

  async wait(runId: string, timeoutMs = 30_000): Promise<{ first: number; end: number }> {
    if (!this.seen.get(runId)?.end) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`run ${runId} did not finish in ${timeoutMs} ms`)), timeoutMs);
        this.waiting.set(runId, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const entry = this.seen.get(runId)!;
    this.seen.delete(runId);
    if (entry.end!.kind !== 'run.succeeded') throw new Error(`run ${runId} ended with ${entry.end!.kind}`);
    return { first: entry.first ?? entry.end!.at, end: entry.end!.at };
  }
}

async function postAlert(app: App, n: number): Promise<string> {
  const body = { labels: { alertname: ALERTNAME, instance: `bench-${n}`, service: 'bench' }, fingerprint: `benchrun${n}`, startsAt: new Date().toISOString() };
  const res = await fetch(`${app.url}/hooks/generic`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as { startedRuns?: string[] };
  if (res.status !== 202 || !json.startedRuns?.[0]) throw new Error(`generic webhook answered ${res.status}: ${JSON.stringify(json)}`);
  return json.startedRuns[0];
}

const tripsOf = (before: Map<string, number>, after: Map<string, number>, ours: (q: string) => boolean) =>
  [...after.entries()]
    .map(([q, n]) => [q, n - (before.get(q) ?? 0)] as [string, number])
    .filter(([q, n]) => n > 0 && !ours(q))
    .sort((a, b) => b[1] - a[1]);

export async function benchEngine(databaseUrl: string, databaseName: string, phase: (name: string, fn: () => Promise<void>) => Promise<void>): Promise<Row[]> {
  installRoundTripCounter();
  const folder = await tempPlaybooks({ 'bench-steps.yaml': notePlaybook(PLAYBOOK, ALERTNAME, STEPS) }, false);
  const rows: Row[] = [];
  const monitor = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  try {
    // ---------- latency, idle server ----------
    let firstStep!: { p50: number; p99: number; max: number };
    let endToEnd!: { p50: number; p99: number; max: number };
    let samples = 0;
    let latencyTripsPerStep = 0;
    let latencyLoad = boxLoad();
    await phase('engine-latency', async () => {
      const app = await startBenchApp({ databaseUrl, playbooksDir: folder.dir, workers: 1 });
      const marks = new Landmarks();
      marks.attach(app);
      try {
        const first: number[] = [];
        const end: number[] = [];
        const boxEnd = performance.now() + LATENCY_BOX_MS;
        const trips0 = roundTripsByQuery();
        latencyLoad = boxLoad();
        for (let i = 0; i < WARMUP_RUNS + LATENCY_RUNS && performance.now() < boxEnd; i++) {
          const t0 = performance.now();
          const id = await postAlert(app, i);
          const m = await marks.wait(id);
          if (i >= WARMUP_RUNS) {
            first.push(m.first - t0);
            end.push(m.end - t0);
          }
        }
        const trips = tripsOf(trips0, roundTripsByQuery(), () => false).reduce((sum, [, n]) => sum + n, 0);
        samples = end.length;
        latencyTripsPerStep = trips / ((WARMUP_RUNS + samples) * STEPS);
        const f = sortedCopy(first);
        const e = sortedCopy(end);
        firstStep = { p50: pct(f, 50), p99: pct(f, 99), max: f[f.length - 1]! };
        endToEnd = { p50: pct(e, 50), p99: pct(e, 99), max: e[e.length - 1]! };
        log(`engine latency over ${samples} runs: alert -> first step started p50 ${round(firstStep.p50)} / p99 ${round(firstStep.p99)} ms; 10-step run end to end p50 ${round(endToEnd.p50)} / p99 ${round(endToEnd.p99)} ms; ${round(latencyTripsPerStep, 2)} round trips per step (webhook included)`);
      } finally {
        await app.stop();
      }
    });

    // ---------- throughput ----------
    let steps = 0;
    let windowS = 0;
    let tripsPerStep = 0;
    let commitsPerStep = 0;
    let eluPct = 0;
    let unfinished = 0;
    let appThreadMs = 0;
    let pgMs = 0;
    let stepsAtCpu = 0;
    let topQueries: Array<[string, number]> = [];
    let throughputLoad = boxLoad();
    await phase('engine-throughput', async () => {
      const ingestApp = await startBenchApp({ databaseUrl, playbooksDir: folder.dir, workers: 0, listen: false });
      const ids: string[] = [];
      try {
        let next = 0;
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            while (next < THROUGHPUT_RUNS) {
              next += 1;
              ids.push((await ingestApp.engine.startRun({ playbook: PLAYBOOK, startedBy: 'bench' })).runId);
            }
          }),
        );
      } finally {
        await ingestApp.stop();
      }
      await sleep(1_500); // let pg_stat_database catch up before the baseline
      const commits0 = await xactCommits(monitor, databaseName);
      const byQuery0 = roundTripsByQuery();
      const backends = new BackendCpu(monitor, databaseName);
      await backends.start();
      const thread0 = mainThreadCpuMs();
      const t0 = performance.now();
      const elu0 = performance.eventLoopUtilization();
      throughputLoad = boxLoad();
      const worker = await startBenchApp({ databaseUrl, playbooksDir: folder.dir, workers: THROUGHPUT_WORKERS, listen: false });
      let polls = 0;
      try {
        for (;;) {
          polls += 1;
          const { rows: r } = await monitor.query<{ left: number; failed: number }>(
            `select count(*) filter (where status not in ('succeeded', 'failed', 'aborted'))::int as left,
                    count(*) filter (where status in ('failed', 'aborted'))::int as failed
             from runs where id = any($1::uuid[])`,
            [ids],
          );
          if (r[0]!.failed > 0) throw new Error(`${r[0]!.failed} bench runs failed`);
          unfinished = r[0]!.left;
          if (unfinished === 0 || performance.now() - t0 > THROUGHPUT_BOX_MS) break;
          await sleep(100);
        }
        eluPct = 100 * performance.eventLoopUtilization(elu0).utilization;
        appThreadMs = mainThreadCpuMs() - thread0;
        pgMs = await backends.elapsed();
        const done = await monitor.query<{ n: number }>(`select count(*)::int as n from run_steps where run_id = any($1::uuid[]) and status = 'succeeded'`, [ids]);
        stepsAtCpu = done.rows[0]!.n;
      } finally {
        await worker.stop();
      }
      // The app's statements only: the bench's own polling and CPU probes go through `monitor`.
      const ours = (q: string) => q.includes(' as left, count(') || q.startsWith('select pid from pg_stat_activity') || q.startsWith('select count(*)::int as n from run_steps');
      topQueries = tripsOf(byQuery0, roundTripsByQuery(), ours);
      const trips = topQueries.reduce((sum, [, n]) => sum + n, 0);
      const { rows: w } = await monitor.query<{ s: number; steps: number }>(
        `select extract(epoch from greatest(max(r.finished_at), (select max(finished_at) from run_steps where run_id = any($1::uuid[])))
                                   - min(r.started_at)) as s,
                (select count(*) from run_steps where run_id = any($1::uuid[]) and status = 'succeeded')::int as steps
         from runs r where r.id = any($1::uuid[])`,
        [ids],
      );
      windowS = Number(w[0]!.s);
      steps = w[0]!.steps;
      await sleep(1_500);
      const commits = (await xactCommits(monitor, databaseName)) - commits0 - polls - 2;
      tripsPerStep = trips / steps;
      commitsPerStep = commits / steps;
      log(
        `engine throughput: ${steps} steps in ${round(windowS, 2)} s (db window) = ${round(steps / windowS, 0)} steps/s; ` +
          `${round(tripsPerStep, 2)} db round trips and ${round(commitsPerStep, 2)} transactions per step; app event loop ${round(eluPct, 0)}% busy; ` +
          `CPU per step: app thread ${round(appThreadMs / stepsAtCpu, 2)} ms (incl. app start), postgres ${round(pgMs / stepsAtCpu, 2)} ms`,
      );
      log(`engine throughput: round trips by statement (whole phase):\n${topQueries.slice(0, 16).map(([q, n]) => `    ${String(n).padStart(6)}  ${(n / steps).toFixed(2).padStart(5)}/step  ${q}`).join('\n')}`);
    });

    // ---------- bare ----------
    let bareQueue!: Awaited<ReturnType<typeof bareClaimComplete>>;
    let bareFirst!: Awaited<ReturnType<typeof bareSequentialCommits>>;
    let bareRun!: Awaited<ReturnType<typeof bareSequentialCommits>>;
    let bareLoad = boxLoad();
    await phase('engine-bare', async () => {
      bareLoad = boxLoad();
      bareQueue = await bareClaimComplete(databaseUrl, { connections: THROUGHPUT_WORKERS, warmupMs: 500, durationMs: 5_000 });
      bareFirst = await bareSequentialCommits(databaseUrl, { commits: 2, samples: 1_000 });
      bareRun = await bareSequentialCommits(databaseUrl, { commits: 2 * STEPS, samples: 1_000 });
      log(
        `bare job queue x${THROUGHPUT_WORKERS}: ${round(bareQueue.jobsPerS, 0)} jobs/s (claim + complete; CPU per job: client ${round(bareQueue.clientCpuMs, 3)} ms, postgres ${round(bareQueue.pgCpuMs, 3)} ms); ` +
          `bare 2 sequential commits p50 ${round(bareFirst.p50)} / p99 ${round(bareFirst.p99)} ms; ${2 * STEPS} sequential commits p50 ${round(bareRun.p50)} / p99 ${round(bareRun.p99)} ms`,
      );
    });

    const load = (l: { load1: number; cpuPressure: number | null }) => `box load ${l.load1} (1-min average), CPU pressure ${l.cpuPressure ?? '?'}%`;
    const latencyNote = `${samples} sequential alerts to one app with FIREBREAK_WORKERS=1 after ${WARMUP_RUNS} warm-up${samples < LATENCY_RUNS ? ` (cut short by the ${LATENCY_BOX_MS / 1000} s time box)` : ''}; measured from just before the POST to the event's emission after its commit; ${load(latencyLoad)} at the start`;
    rows.push(
      { name: 'engine: alert received -> first step started, idle p50', value: round(firstStep.p50), unit: 'ms', bare: round(bareFirst.p50), ratio: round(firstStep.p50 / bareFirst.p50, 2), note: `${latencyNote}; bare = 2 sequential single-row commits (store the alert, start the step)` },
      { name: 'engine: alert received -> first step started, idle p99', value: round(firstStep.p99), unit: 'ms', bare: round(bareFirst.p99), ratio: round(firstStep.p99 / bareFirst.p99, 2), note: `max ${round(firstStep.max)} ms over ${samples} samples` },
      { name: 'engine: 10-step note run end to end p50', value: round(endToEnd.p50), unit: 'ms', bare: round(bareRun.p50), ratio: round(endToEnd.p50 / bareRun.p50, 2), note: `same runs; from the alert's POST to run.succeeded; bare = ${2 * STEPS} sequential single-row commits (two per step)` },
      { name: 'engine: 10-step note run end to end p99', value: round(endToEnd.p99), unit: 'ms', bare: round(bareRun.p99), ratio: round(endToEnd.p99 / bareRun.p99, 2), note: `max ${round(endToEnd.max)} ms over ${samples} samples` },
      {
        name: 'engine: step transitions/s, 4 workers',
        value: round(steps / windowS, 0),
        unit: 'steps/s',
        bare: round(bareQueue.jobsPerS, 0),
        ratio: round(steps / windowS / bareQueue.jobsPerS, 3),
        note:
          `${THROUGHPUT_RUNS} queued runs x ${STEPS} note steps drained by one app with FIREBREAK_WORKERS=4; window = first run started -> last step finished (db clock)` +
          `${unfinished > 0 ? `, cut short by the ${THROUGHPUT_BOX_MS / 1000} s time box with ${unfinished} runs unfinished` : ''}; ` +
          `${round(tripsPerStep, 2)} db round trips and ~${round(commitsPerStep, 2)} transactions per step; app event loop ${round(eluPct, 0)}% busy; ` +
          `CPU per step: app thread ${round(appThreadMs / stepsAtCpu, 2)} ms + postgres ${round(pgMs / stepsAtCpu, 2)} ms (bare job: ${round(bareQueue.clientCpuMs, 3)} + ${round(bareQueue.pgCpuMs, 3)} ms), ` +
          `so even with all ${cpus().length} cores free it tops out near ${round((cpus().length * 1000 * stepsAtCpu) / (appThreadMs + pgMs), 0)} steps/s (bare ${round((cpus().length * 1000) / (bareQueue.clientCpuMs + bareQueue.pgCpuMs), 0)}/s); ` +
          `bare = a job queue on ${THROUGHPUT_WORKERS} pg connections: claim (FOR UPDATE SKIP LOCKED) + complete, two commits per job, measured right after; ${load(throughputLoad)} at the start, ${load(bareLoad)} for the bare`,
        detail: topQueries.slice(0, 14).map(([q, n]) => `${(n / steps).toFixed(2)} per step: \`${q}\``),
      },
      {
        name: 'engine: database round trips per note step',
        value: round(tripsPerStep, 2),
        unit: 'round trips',
        bare: 2,
        ratio: round(tripsPerStep / 2, 2),
        note: `counted by wrapping pg's Client.query during the throughput phase (claims, loads, admissions, heartbeats and the runs' ends included); ${round(latencyTripsPerStep, 2)} in the latency phase, the webhook's own included; bare = claim + complete`,
      },
    );
  } finally {
    await monitor.end();
    await folder.remove();
  }
  return rows;
}
