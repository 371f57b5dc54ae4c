/**
 * `npm run bench`: every figure of PRODUCT.md "Targets" that one process can
 * measure, each next to its bare limit measured in the same run on the same
 * box, printed as ONE table and written to bench/RESULTS.md.
 *
 * Needs a real Postgres server: DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/postgres) is only used to create and
 * drop fresh `fb_bench_<random>` databases; nothing is written anywhere else.
 *
 * Tunables (env): BENCH_CONNECTIONS (32), BENCH_INGEST_MS (8000),
 * BENCH_LATENCY_RUNS (1000), BENCH_THROUGHPUT_RUNS (300), BENCH_ONLY (a comma list of
 * ingest, engine, policy; default all: a partial run does not write RESULTS.md).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { createBenchDatabase, installRoundTripCounter, log, markRss, ROOT, round, rssLog, serverInfo, type BenchDatabase, type Row } from './common.js';
import { benchEngine } from './engine.js';
import { benchIngest } from './ingest.js';
import { benchPolicy } from './policy.js';

interface Target {
  match: (row: Row) => boolean;
  text: string;
  met: (row: Row) => boolean;
}

/** PRODUCT.md "Targets" (and issue 15's table), as checks on the rows they apply to: ratios against bare limits of the same run. */
const TARGETS: Target[] = [
  {
    match: (r) => r.name.startsWith('ingest: ') && r.name.includes('no playbook matches') && r.unit === 'notifications/s',
    text: '>= 0.50 of bare',
    met: (r) => (r.ratio ?? 0) >= 0.5,
  },
  {
    match: (r) => r.name.startsWith('ingest: ') && r.name.includes('a playbook matches') && r.unit === 'notifications/s',
    text: '>= 0.35 of bare',
    met: (r) => (r.ratio ?? 0) >= 0.35,
  },
  { match: (r) => r.name.startsWith('ingest: ') && r.name.endsWith(' p99'), text: '< 50 ms', met: (r) => r.value < 50 },
  { match: (r) => r.name === 'engine: step transitions/s, 4 workers', text: '>= 0.33 of bare', met: (r) => (r.ratio ?? 0) >= 0.33 },
  { match: (r) => r.name === 'engine: database round trips per note step', text: '<= 4', met: (r) => r.value <= 4 },
  { match: (r) => r.name === 'engine: 10-step note run end to end p99', text: '< 100 ms', met: (r) => r.value < 100 },
  { match: (r) => r.name === 'engine: alert received -> first step started, idle p99', text: '<= 20 ms', met: (r) => r.value <= 20 },
  { match: (r) => r.name === 'policy decision p99', text: '< 1 ms', met: (r) => r.value < 1 },
];

function judge(rows: Row[]): Row[] {
  return rows.map((row) => {
    const t = TARGETS.find((x) => x.match(row));
    return t ? { ...row, target: t.text, met: t.met(row) } : row;
  });
}

const fmt = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? '' : n >= 1000 ? Math.round(n).toLocaleString('en-US') : String(n));

function table(rows: Row[]): string {
  const head = ['Figure', 'Value', 'Unit', 'Bare limit (same run)', 'Ratio value/bare', 'Target (PRODUCT.md)', 'Met'];
  const body = rows.map((r) => [
    r.name,
    fmt(r.value),
    r.unit,
    fmt(r.bare),
    r.ratio === undefined ? '' : String(r.ratio),
    r.target ?? '',
    r.met === undefined ? '' : r.met ? 'met' : 'MISSED',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 || i >= 5 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const sep = `|${widths.map((w, i) => (i === 0 || i >= 5 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(head), sep, ...body.map(line)].join('\n');
}

function notes(rows: Row[]): string {
  return rows
    .filter((r) => r.note)
    .map((r) => `- ${r.name}: ${r.note}`)
    .join('\n');
}

function machine(): Record<string, string> {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    model = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? model;
  } catch {
    /* not Linux */
  }
  let commit = process.env.BENCH_COMMIT ?? '';
  if (!commit) {
    try {
      commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      commit = 'unknown';
    }
  }
  return {
    commit,
    nproc: String(cpus().length),
    cpu: model,
    memory: `${round(totalmem() / 2 ** 30, 1)} GiB`,
    node: process.version,
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  installRoundTripCounter();
  const box = machine();
  const pgInfo = await serverInfo();
  log(`machine: ${JSON.stringify(box)}; postgres: ${pgInfo.version}; ${JSON.stringify(pgInfo.settings)}`);

  const databases: BenchDatabase[] = [];
  const dropAll = async () => {
    for (const db of databases) await db.drop().catch((err: Error) => log(`could not drop ${db.name}: ${err.message}`));
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log(`${signal}: dropping bench databases`);
      void dropAll().finally(() => process.exit(130));
    });
  }

  const phase = async (name: string, fn: () => Promise<void>) => {
    markRss(name, 'before');
    const t = performance.now();
    await fn();
    markRss(name, 'after');
    log(`${name} took ${round((performance.now() - t) / 1000, 1)} s`);
  };

  const only = new Set((process.env.BENCH_ONLY ?? 'ingest,engine,policy').split(',').map((x) => x.trim()));
  const partial = !['ingest', 'engine', 'policy'].every((p) => only.has(p));
  const rows: Row[] = [];
  try {
    // Ingest and its bare INSERTs in one fresh database; the engine in another,
    // so the runs the ingest bench queued never reach the engine's workers.
    if (only.has('ingest')) {
      const ingestDb = await createBenchDatabase();
      databases.push(ingestDb);
      log(`database ${ingestDb.name} created`);
      rows.push(...(await benchIngest(ingestDb.url, phase)));
      await ingestDb.drop();
    }
    if (only.has('engine')) {
      const engineDb = await createBenchDatabase();
      databases.push(engineDb);
      log(`database ${engineDb.name} created`);
      rows.push(...(await benchEngine(engineDb.url, engineDb.name, phase)));
      await engineDb.drop();
    }
    if (only.has('policy')) {
      await phase('policy', async () => {
        rows.push(...(await benchPolicy()));
      });
    }
  } finally {
    await dropAll();
  }

  const judged = judge(rows);
  const elapsed = round((performance.now() - started) / 1000, 1);
  const out = table(judged);
  const missed = judged.filter((r) => r.met === false);
  console.log(`\n${out}\n`);
  console.log(missed.length === 0 ? 'All targets met.' : `Missed: ${missed.map((r) => `${r.name} (${fmt(r.value)} ${r.unit}, target ${r.target})`).join('; ')}`);
  console.log(`\nNotes:\n${notes(judged)}\n`);
  const rss = rssLog.map((m) => `${m.phase} ${m.when}: ${m.rssMb} MB`).join(', ');
  console.log(`RSS: ${rss}`);
  console.log(`bench took ${elapsed} s`);

  const md = [
    '# Bench results',
    '',
    `Latest \`npm run bench\`, ${new Date().toISOString().slice(0, 10)}. Every bare limit was measured in the same run, on the same box, against the same Postgres server.`,
    '',
    '## Machine',
    '',
    `- code: commit ${box.commit}`,
    `- nproc: ${box.nproc}`,
    `- CPU: ${box.cpu}`,
    `- memory: ${box.memory}`,
    `- Node: ${box.node}`,
    `- Postgres: ${pgInfo.version.split(',')[0]} (${Object.entries(pgInfo.settings).map(([k, v]) => `${k}=${v}`).join(', ')}), on the same box`,
    '',
    '## Table',
    '',
    'Ratio = value / bare: for rates higher is better, for latencies lower is better. Each bare limit is plain `pg` doing the least the feature needs, on the same server, in the same run: single-row INSERT commits at the same concurrency for a notification; a job queue (claim with FOR UPDATE SKIP LOCKED + complete, two commits per job) on as many connections as workers for a step transition; sequential single-row commits for latencies. p99s are taken over at least 1,000 samples. The notes give database round trips and CPU time per operation (app thread and Postgres backends, read from /proc); unlike wall-clock rates they barely move with other load on the box, and they give the ceiling each figure would reach with every core free. The load on the box (other work running on it) is given per phase at the bottom.',
    '',
    out,
    '',
    missed.length === 0 ? 'All targets met.' : `Missed: ${missed.map((r) => `${r.name} (${fmt(r.value)} ${r.unit}, target ${r.target})`).join('; ')}.`,
    '',
    '## Notes',
    '',
    notes(judged),
    '',
    ...judged
      .filter((r) => r.detail && r.detail.length > 0)
      .flatMap((r) => [`## Database statements behind "${r.name}"`, '', 'Statements the app sent during the phase, per succeeded step (begin/commit included), most frequent first:', '', ...r.detail!.map((d) => `- ${d}`), '']),
    '## Memory (process RSS)',
    '',
    'With the load on the box at each mark: the 1-minute load average and Linux CPU pressure (% of the last 10 s in which some task waited for a CPU). Other processes on the box skew every figure.',
    '',
    '| Phase | RSS before | RSS after | Load before / after | CPU pressure before / after |',
    '|:--|--:|--:|--:|--:|',
    ...[...new Set(rssLog.map((m) => m.phase))].map((p) => {
      const b = rssLog.find((m) => m.phase === p && m.when === 'before');
      const a = rssLog.find((m) => m.phase === p && m.when === 'after');
      return `| ${p} | ${b?.rssMb ?? ''} MB | ${a?.rssMb ?? ''} MB | ${b?.load1 ?? ''} / ${a?.load1 ?? ''} | ${b?.cpuPressure ?? '?'}% / ${a?.cpuPressure ?? '?'}% |`;
    }),
    '',
    `The whole bench took ${elapsed} s.`,
    '',
  ].join('\n');
  if (partial) {
    log(`partial run (BENCH_ONLY=${[...only].join(',')}): bench/RESULTS.md left as it was`);
    return;
  }
  await writeFile(join(ROOT, 'bench', 'RESULTS.md'), md);
  log('wrote bench/RESULTS.md');
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err.stack ?? err.message);
    process.exit(1);
  },
);
