/**
 * Bare limits: what the same Postgres server on the same box does through
 * plain `pg` with no application around it. Measured in the bench database,
 * in the same run as the figures they are compared with.
 */
import pg from 'pg';
import { BackendCpu, mainThreadCpuMs, pct, sortedCopy } from './common.js';

export interface BareInsertResult {
  commitsPerS: number;
  p50: number;
  p99: number;
  commits: number;
  connections: number;
  /** CPU ms per commit in the Postgres backends, and in this thread (the pg client). */
  pgCpuMs: number;
  clientCpuMs: number;
}

const databaseOf = (url: string) => decodeURIComponent(new URL(url).pathname.slice(1));

/** Measure the CPU the bench database's backends and this thread spend while `fn` runs. */
async function withCpu<T>(url: string, fn: () => Promise<T>): Promise<{ result: T; pgMs: number; clientMs: number }> {
  const monitor = new pg.Pool({ connectionString: url, max: 1 });
  try {
    const backends = new BackendCpu(monitor, databaseOf(url));
    await backends.start();
    const c0 = mainThreadCpuMs();
    const result = await fn();
    const clientMs = mainThreadCpuMs() - c0;
    const pgMs = await backends.elapsed();
    return { result, pgMs, clientMs };
  } finally {
    await monitor.end();
  }
}

async function connectAll(url: string, n: number): Promise<pg.Client[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const c = new pg.Client({ connectionString: url, application_name: 'firebreak-bench-bare' });
      await c.connect();
      return c;
    }),
  );
}

/**
 * Single-row INSERT commits: `connections` clients, each in a loop of one
 * autocommitted `insert ... values ($1::jsonb)` (one round trip, one commit,
 * one WAL flush unless group commit merges it). `payload` is a real
 * notification body, so the jsonb row is the size ingest stores.
 */
export async function bareInserts(url: string, options: { connections: number; warmupMs: number; durationMs: number; payload: string }): Promise<BareInsertResult> {
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  await setup.query(`create table if not exists bench_bare_insert (
    id bigint generated always as identity primary key,
    received_at timestamptz not null default now(),
    payload jsonb not null)`);
  await setup.end();
  const clients = await connectAll(url, options.connections);
  const start = performance.now();
  const measureFrom = start + options.warmupMs;
  const stopAt = measureFrom + options.durationMs;
  const latencies: number[] = [];
  let lastDone = measureFrom;
  let total = 0;
  const sql = 'insert into bench_bare_insert (payload) values ($1::jsonb)';
  const cpu = await withCpu(url, () => Promise.all(
    clients.map(async (c) => {
      while (performance.now() < stopAt) {
        const t0 = performance.now();
        await c.query(sql, [options.payload]);
        total += 1;
        const t1 = performance.now();
        if (t0 >= measureFrom) {
          latencies.push(t1 - t0);
          lastDone = Math.max(lastDone, t1);
        }
      }
    }),
  ));
  await Promise.all(clients.map((c) => c.end()));
  const sorted = sortedCopy(latencies);
  return {
    pgCpuMs: cpu.pgMs / total,
    clientCpuMs: cpu.clientMs / total,
    commitsPerS: latencies.length / ((lastDone - measureFrom) / 1000),
    p50: pct(sorted, 50),
    p99: pct(sorted, 99),
    commits: latencies.length,
    connections: options.connections,
  };
}

/**
 * The bare cost of a durable step transition. The least any durable engine
 * must do to move a run one step on is ONE commit that records the step's
 * result (an event row with a jsonb payload) and advances the run's state
 * (an UPDATE of the run row), so that is what is measured: one statement
 * (insert + update in one CTE), one round trip, one commit per step.
 *
 * - throughput: `connections` clients (= the engine's worker count) each
 *   driving its share of `runs` runs of `steps` steps, back to back.
 * - latency: one client drives `latencyRuns` runs of `steps` sequential
 *   commits; the time of each whole run (its "end to end").
 */
export async function bareTransitions(
  url: string,
  options: { connections: number; runs: number; steps: number; latencyRuns: number },
): Promise<{ perS: number; commits: number; runP50: number; runP99: number; pgCpuMs: number; clientCpuMs: number }> {
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  await setup.query(`create table if not exists bench_bare_runs (
    id bigint primary key, status text not null default 'running', step int not null default 0,
    updated_at timestamptz not null default now())`);
  await setup.query(`create table if not exists bench_bare_events (
    id bigint generated always as identity primary key, run_id bigint not null references bench_bare_runs (id),
    seq int not null, kind text not null, data jsonb not null, at timestamptz not null default now(), unique (run_id, seq))`);
  const total = options.runs + options.latencyRuns;
  await setup.query('insert into bench_bare_runs (id) select g from generate_series(1, $1::int) g', [total]);
  await setup.end();

  const sql = `with ev as (
      insert into bench_bare_events (run_id, seq, kind, data) values ($1::bigint, $2::int, 'step.succeeded', $3::jsonb) returning run_id)
    update bench_bare_runs r set step = $2::int, status = case when $2::int = $4::int then 'succeeded' else 'running' end, updated_at = now()
    from ev where r.id = ev.run_id`;
  const data = (run: number, step: number) =>
    JSON.stringify({ stepId: `note_${step}`, action: 'note', attempt: 1, output: { text: `step ${step} of ${options.steps} for run ${run}`, data: null } });
  const driveRun = async (c: pg.Client, run: number) => {
    for (let s = 1; s <= options.steps; s++) await c.query(sql, [run, s, data(run, s), options.steps]);
  };

  const clients = await connectAll(url, options.connections);
  let nextRun = 1;
  const t0 = performance.now();
  const cpu = await withCpu(url, () =>
    Promise.all(
      clients.map(async (c) => {
        for (let run = nextRun++; run <= options.runs; run = nextRun++) await driveRun(c, run);
      }),
    ),
  );
  const elapsedS = (performance.now() - t0) / 1000;
  const latencies: number[] = [];
  const one = clients[0]!;
  for (let i = 0; i < options.latencyRuns; i++) {
    const s = performance.now();
    await driveRun(one, options.runs + 1 + i);
    latencies.push(performance.now() - s);
  }
  await Promise.all(clients.map((c) => c.end()));
  const sorted = sortedCopy(latencies);
  const commits = options.runs * options.steps;
  return { perS: commits / elapsedS, commits, runP50: pct(sorted, 50), runP99: pct(sorted, 99), pgCpuMs: cpu.pgMs / commits, clientCpuMs: cpu.clientMs / commits };
}

/**
 * The bare job queue: what a step transition is compared with. `connections`
 * clients loop: claim the oldest ready job with FOR UPDATE SKIP LOCKED (one
 * autocommitted statement that marks it taken), then complete it with its
 * result (a second one). Two round trips and two commits per job: the least a
 * durable queue does to hand out work and record that it is done.
 */
export async function bareClaimComplete(url: string, options: { connections: number; warmupMs: number; durationMs: number }): Promise<{ jobsPerS: number; jobs: number; pgCpuMs: number; clientCpuMs: number }> {
  const setup = new pg.Client({ connectionString: url });
  await setup.connect();
  await setup.query(`create table if not exists bench_bare_jobs (
    id bigint generated always as identity primary key, status text not null default 'ready',
    owner text, result jsonb, claimed_at timestamptz, done_at timestamptz)`);
  await setup.query(`create index if not exists bench_bare_jobs_ready on bench_bare_jobs (id) where status = 'ready'`);
  await setup.query(`insert into bench_bare_jobs (status) select 'ready' from generate_series(1, 200000)`);
  await setup.end();
  const claim = `with c as (select id from bench_bare_jobs where status = 'ready' order by id limit 1 for update skip locked)
    update bench_bare_jobs j set status = 'taken', owner = $1::text, claimed_at = now() from c where j.id = c.id returning j.id`;
  const complete = `update bench_bare_jobs set status = 'done', result = $2::jsonb, done_at = now() where id = $1::bigint`;
  const clients = await connectAll(url, options.connections);
  const start = performance.now();
  const measureFrom = start + options.warmupMs;
  const stopAt = measureFrom + options.durationMs;
  let measured = 0;
  let total = 0;
  let lastDone = measureFrom;
  const cpu = await withCpu(url, () =>
    Promise.all(
      clients.map(async (c, i) => {
        const owner = `bare-${i}`;
        while (performance.now() < stopAt) {
          const t0 = performance.now();
          const { rows } = await c.query<{ id: number }>(claim, [owner]);
          const job = rows[0];
          if (!job) break;
          await c.query(complete, [job.id, JSON.stringify({ stepId: 'note', output: { text: `job ${job.id}` } })]);
          total += 1;
          const t1 = performance.now();
          if (t0 >= measureFrom) {
            measured += 1;
            lastDone = Math.max(lastDone, t1);
          }
        }
      }),
    ),
  );
  await Promise.all(clients.map((c) => c.end()));
  return { jobsPerS: measured / ((lastDone - measureFrom) / 1000), jobs: measured, pgCpuMs: cpu.pgMs / total, clientCpuMs: cpu.clientMs / total };
}

/** `commits` single-row INSERT commits in a row on one connection, `samples` times: the floor of a sequence of durable steps. */
export async function bareSequentialCommits(url: string, options: { commits: number; samples: number }): Promise<{ p50: number; p99: number }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query(`create table if not exists bench_bare_seq (id bigint generated always as identity primary key, at timestamptz not null default now(), data jsonb)`);
  const latencies: number[] = [];
  for (let i = 0; i < options.samples; i++) {
    const t0 = performance.now();
    for (let k = 0; k < options.commits; k++) await c.query('insert into bench_bare_seq (data) values ($1::jsonb)', [JSON.stringify({ i, k })]);
    latencies.push(performance.now() - t0);
  }
  await c.end();
  const sorted = sortedCopy(latencies);
  return { p50: pct(sorted, 50), p99: pct(sorted, 99) };
}
