/**
 * The durable run engine on a real Postgres server, through the real app
 * (startApp), with a playbook of 10 `note` steps.
 *
 * 1. Latency: ~50 sequential runs with FIREBREAK_WORKERS=1, two ways:
 *    - an alert POSTed to /hooks/generic of an ingest-only app (workers=0) in
 *      this process; the worker app hears about the new run only through
 *      LISTEN/NOTIFY (no in-process poke crosses apps). Measured from the POST
 *      to the worker's run.succeeded event (after its commit).
 *    - engine.startRun on the worker app itself (manual run; the in-process
 *      poke wakes the worker).
 * 2. Throughput: 300 runs x 10 steps queued, then an app with 4 workers
 *    drains them; step transitions/s = steps that succeeded / (last run
 *    finished - first run started), both from the database clock.
 *
 * Bare limit (see bare.ts): one commit per step transition (insert the step's
 * event row + update the run row in one statement) through plain `pg`, with as
 * many connections as workers; and for latency, a run = 10 such commits in a
 * row on one connection. A step transition cannot be durable with less than
 * one commit, so this is the floor the engine is compared with.
 */
import { cpus } from 'node:os';
import pg from 'pg';
import type { App } from '../src/app/index.js';
import { bareTransitions } from './bare.js';
import {
  BackendCpu,
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
const LATENCY_RUNS = Number(process.env.BENCH_LATENCY_RUNS ?? 50);
const WARMUP_RUNS = 5;
const THROUGHPUT_RUNS = Number(process.env.BENCH_THROUGHPUT_RUNS ?? 300);
const THROUGHPUT_WORKERS = 4;
/** Time boxes, so a slow engine cannot stretch the bench past a few minutes; a cut-short phase says so. */
const LATENCY_BOX_MS = 20_000;
const THROUGHPUT_BOX_MS = 30_000;
const PLAYBOOK = 'bench-steps';
const ALERTNAME = 'FirebreakBenchRun';

/** Resolves when a run's run.succeeded event has been emitted (after its commit); fails on any other end. */
class Finishes {
  private readonly done = new Map<string, { at: number; kind: string }>();
  private readonly waiting = new Map<string, (v: { at: number; kind: string }) => void>();

  attach(app: App): void {
    app.engine.onEvent((runId, events) => {
      for (const e of events) {
        if (!e.kind.startsWith('run.') || !['run.succeeded', 'run.failed', 'run.aborted'].includes(e.kind)) continue;
        const v = { at: performance.now(), kind: e.kind };
        const w = this.waiting.get(runId);
        if (w) {
          this.waiting.delete(runId);
          w(v);
        } else this.done.set(runId, v);
      }
    });
  }

  async wait(runId: string, timeoutMs = 30_000): Promise<number> {
    const early = this.done.get(runId);
    const v =
      early ??
      (await new Promise<{ at: number; kind: string }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`run ${runId} did not finish in ${timeoutMs} ms`)), timeoutMs);
        this.waiting.set(runId, (x) => {
          clearTimeout(timer);
          resolve(x);
        });
      }));
    this.done.delete(runId);
    if (v.kind !== 'run.succeeded') throw new Error(`run ${runId} ended with ${v.kind}`);
    return v.at;
  }
}

async function postAlert(app: App, n: number): Promise<string> {
  const body = { labels: { alertname: ALERTNAME, instance: `bench-${n}`, service: 'bench' }, fingerprint: `benchrun${n}`, startsAt: new Date().toISOString() };
  const res = await fetch(`${app.url}/hooks/generic`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as { startedRuns?: string[] };
  if (res.status !== 202 || !json.startedRuns?.[0]) throw new Error(`generic webhook answered ${res.status}: ${JSON.stringify(json)}`);
  return json.startedRuns[0];
}

async function dbLatencies(pool: pg.Pool, ids: string[]): Promise<{ p50: number; p99: number }> {
  const { rows } = await pool.query<{ ms: number }>(
    `select extract(epoch from finished_at - created_at) * 1000 as ms from runs where id = any($1::uuid[]) and status = 'succeeded'`,
    [ids],
  );
  const sorted = sortedCopy(rows.map((r) => Number(r.ms)));
  return { p50: pct(sorted, 50), p99: pct(sorted, 99) };
}

export async function benchEngine(databaseUrl: string, databaseName: string, phase: (name: string, fn: () => Promise<void>) => Promise<void>): Promise<Row[]> {
  installRoundTripCounter();
  const folder = await tempPlaybooks({ 'bench-steps.yaml': notePlaybook(PLAYBOOK, ALERTNAME, STEPS) }, false);
  const rows: Row[] = [];
  const monitor = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  const ingestApp = await startBenchApp({ databaseUrl, playbooksDir: folder.dir, workers: 0 });
  try {
    // ---------- latency ----------
    type Latency = { n: number; p50: number; p99: number; db: { p50: number; p99: number }; max: number };
    let webhook!: Latency;
    let manual!: Latency;
    await phase('engine-latency', async () => {
      const worker = await startBenchApp({ databaseUrl, playbooksDir: folder.dir, workers: 1, listen: false });
      const finishes = new Finishes();
      finishes.attach(worker);
      try {
        const measure = async (start: (n: number) => Promise<string>, offset: number) => {
          const lat: number[] = [];
          const ids: string[] = [];
          const boxEnd = performance.now() + LATENCY_BOX_MS;
          for (let i = 0; i < WARMUP_RUNS + LATENCY_RUNS && performance.now() < boxEnd; i++) {
            const t0 = performance.now();
            const id = await start(offset + i);
            const t1 = await finishes.wait(id);
            if (i >= WARMUP_RUNS) {
              lat.push(t1 - t0);
              ids.push(id);
            }
          }
          const sorted = sortedCopy(lat);
          return { n: lat.length, p50: pct(sorted, 50), p99: pct(sorted, 99), max: sorted[sorted.length - 1]!, db: await dbLatencies(monitor, ids) };
        };
        webhook = await measure((n) => postAlert(ingestApp, n), 0);
        log(`engine latency, webhook -> NOTIFY -> worker: p50 ${round(webhook.p50)} ms, p99 ${round(webhook.p99)} ms, max ${round(webhook.max)} ms (db created->finished p50 ${round(webhook.db.p50)}, p99 ${round(webhook.db.p99)})`);
        manual = await measure(async () => (await worker.engine.startRun({ playbook: PLAYBOOK, startedBy: 'bench' })).runId, 10_000);
        log(`engine latency, engine.startRun in process: p50 ${round(manual.p50)} ms, p99 ${round(manual.p99)} ms, max ${round(manual.max)} ms (db p50 ${round(manual.db.p50)}, p99 ${round(manual.db.p99)})`);
      } finally {
        await worker.stop();
      }
    });

    // ---------- throughput ----------
    let steps = 0;
    let windowS = 0;
    let wallS = 0;
    let tripsPerStep = 0;
    let commitsPerStep = 0;
    let eluPct = 0;
    let unfinished = 0;
    let appThreadMs = 0;
    let pgMs = 0;
    let stepsAtCpu = 0;
    let topQueries: Array<[string, number]> = [];
    await phase('engine-throughput', async () => {
      const ids: string[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < THROUGHPUT_RUNS) {
            next += 1;
            ids.push((await ingestApp.engine.startRun({ playbook: PLAYBOOK, startedBy: 'bench' })).runId);
          }
        }),
      );
      await sleep(1_500); // let pg_stat_database catch up before the baseline
      const commits0 = await xactCommits(monitor, databaseName);
      const byQuery0 = roundTripsByQuery();
      const backends = new BackendCpu(monitor, databaseName);
      await backends.start();
      const thread0 = mainThreadCpuMs();
      const t0 = performance.now();
      const elu0 = performance.eventLoopUtilization();
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
        wallS = (performance.now() - t0) / 1000;
        eluPct = 100 * performance.eventLoopUtilization(elu0).utilization;
        appThreadMs = mainThreadCpuMs() - thread0;
        pgMs = await backends.elapsed();
        const done = await monitor.query<{ n: number }>(`select count(*)::int as n from run_steps where run_id = any($1::uuid[]) and status = 'succeeded'`, [ids]);
        stepsAtCpu = done.rows[0]!.n;
      } finally {
        await worker.stop();
      }
      const byQuery1 = roundTripsByQuery();
      // The app's statements only: the bench's own polling and CPU probes go through `monitor`.
      const ours = (q: string) => q.includes(' as left, count(') || q.startsWith('select pid from pg_stat_activity') || q.startsWith('select count(*)::int as n from run_steps');
      topQueries = [...byQuery1.entries()]
        .map(([q, n]) => [q, n - (byQuery0.get(q) ?? 0)] as [string, number])
        .filter(([q, n]) => n > 0 && !ours(q))
        .sort((a, b) => b[1] - a[1]);
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
        `engine throughput: ${steps} steps in ${round(windowS, 2)} s (db window; ${round(wallS, 2)} s wall incl. app start) = ${round(steps / windowS, 0)} steps/s; ` +
          `${round(tripsPerStep, 1)} db round trips and ${round(commitsPerStep, 1)} transactions per step; app event loop ${round(eluPct, 0)}% busy; ` +
          `CPU per step: app thread ${round(appThreadMs / stepsAtCpu, 2)} ms (incl. app start), postgres ${round(pgMs / stepsAtCpu, 2)} ms`,
      );
      log(`engine throughput: round trips by statement (whole phase):\n${topQueries.slice(0, 16).map(([q, n]) => `    ${String(n).padStart(6)}  ${(n / steps).toFixed(2).padStart(5)}/step  ${q}`).join('\n')}`);
    });

    // ---------- bare ----------
    let bare!: Awaited<ReturnType<typeof bareTransitions>>;
    await phase('engine-bare', async () => {
      bare = await bareTransitions(databaseUrl, { connections: THROUGHPUT_WORKERS, runs: THROUGHPUT_RUNS, steps: STEPS, latencyRuns: LATENCY_RUNS });
      log(
        `bare step commits x${THROUGHPUT_WORKERS}: ${round(bare.perS, 0)}/s (CPU per commit: client ${round(bare.clientCpuMs, 3)} ms, postgres ${round(bare.pgCpuMs, 3)} ms); ` +
          `bare 10-commit run p50 ${round(bare.runP50)} ms, p99 ${round(bare.runP99)} ms`,
      );
    });

    const latencyNote = (m: typeof webhook) =>
      `${m.n} sequential runs after ${WARMUP_RUNS} warm-up${m.n < LATENCY_RUNS ? ` (cut short by the ${LATENCY_BOX_MS / 1000} s time box)` : ''}; max ${round(m.max)} ms; db clock created->finished p50 ${round(m.db.p50)} / p99 ${round(m.db.p99)} ms`;
    const bareLatNote = 'bare = 10 sequential single-statement insert+update commits on one pg connection';
    rows.push(
      { name: 'engine: 10-step run end to end, webhook -> NOTIFY -> worker p50', value: round(webhook.p50), unit: 'ms', bare: round(bare.runP50), ratio: round(webhook.p50 / bare.runP50, 2), note: `workers=1 in another app; ${latencyNote(webhook)}` },
      { name: 'engine: 10-step run end to end, webhook -> NOTIFY -> worker p99', value: round(webhook.p99), unit: 'ms', bare: round(bare.runP99), ratio: round(webhook.p99 / bare.runP99, 2), note: bareLatNote },
      { name: 'engine: 10-step run end to end, engine.startRun p50', value: round(manual.p50), unit: 'ms', bare: round(bare.runP50), ratio: round(manual.p50 / bare.runP50, 2), note: `workers=1, same app; ${latencyNote(manual)}` },
      { name: 'engine: 10-step run end to end, engine.startRun p99', value: round(manual.p99), unit: 'ms', bare: round(bare.runP99), ratio: round(manual.p99 / bare.runP99, 2) },
      {
        name: 'engine: step transitions/s, 4 workers',
        value: round(steps / windowS, 0),
        unit: 'steps/s',
        bare: round(bare.perS, 0),
        ratio: round(steps / windowS / bare.perS, 3),
        note:
          `${THROUGHPUT_RUNS} queued runs x ${STEPS} note steps drained by one app with FIREBREAK_WORKERS=4; window = first run started -> last step finished (db clock)` +
          `${unfinished > 0 ? `, cut short by the ${THROUGHPUT_BOX_MS / 1000} s time box with ${unfinished} runs unfinished` : ''}; ` +
          `${round(tripsPerStep, 1)} db round trips and ~${round(commitsPerStep, 1)} transactions per step; app event loop ${round(eluPct, 0)}% busy; ` +
          `CPU per step: app thread ${round(appThreadMs / stepsAtCpu, 2)} ms + postgres ${round(pgMs / stepsAtCpu, 2)} ms (bare: ${round(bare.clientCpuMs, 3)} + ${round(bare.pgCpuMs, 3)} ms), ` +
          `so even with all ${cpus().length} cores free it tops out near ${round((cpus().length * 1000 * stepsAtCpu) / (appThreadMs + pgMs), 0)} steps/s (bare ${round((cpus().length * 1000) / (bare.clientCpuMs + bare.pgCpuMs), 0)}/s); ` +
          `bare = one insert+update commit per step on ${THROUGHPUT_WORKERS} pg connections`,
        detail: topQueries.slice(0, 14).map(([q, n]) => `${(n / steps).toFixed(2)} per step: \`${q}\``),
      },
    );
  } finally {
    await ingestApp.stop();
    await monitor.end();
    await folder.remove();
  }
  return rows;
}
