/**
 * Shared bench plumbing: the fresh database every run uses (and drops), app
 * configs, percentiles, RSS, and a round-trip counter for evidence.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { createLogger, startApp, type App } from '../src/app/index.js';
import { loadConfig } from '../src/config/index.js';
import { packageRoot } from '../src/store/index.js';
import type { BenchResult } from './policy.js';

export type { BenchResult } from './policy.js';

/** A table row: a figure plus the target it is judged against (set by the runner). */
export interface Row extends BenchResult {
  target?: string;
  met?: boolean;
  /** Evidence lines printed under the table (e.g. statements per step). */
  detail?: string[];
}

export const ROOT = packageRoot();
export const ADMIN_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

// ---------- numbers ----------

/** Nearest-rank percentile of an already sorted array. */
export function pct(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function sortedCopy(xs: ArrayLike<number>): Float64Array {
  return Float64Array.from(xs as ArrayLike<number>).sort();
}

export const round = (n: number, digits = 2) => Number(n.toFixed(digits));

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------- memory ----------

export interface RssMark {
  phase: string;
  when: 'before' | 'after';
  rssMb: number;
  heapMb: number;
  /** 1-minute load average and CPU pressure (share of time some task waited for a CPU, last 10 s): how busy the box was. */
  load1: number;
  cpuPressure: number | null;
}

export const rssLog: RssMark[] = [];

/** The box's load right now: other processes on it skew every figure. */
export function boxLoad(): { load1: number; cpuPressure: number | null } {
  const load1 = loadavg()[0] ?? 0;
  let cpuPressure: number | null = null;
  try {
    const m = /some avg10=([\d.]+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    if (m) cpuPressure = Number(m[1]);
  } catch {
    /* no PSI */
  }
  return { load1: round(load1, 2), cpuPressure };
}

export function markRss(phase: string, when: 'before' | 'after'): void {
  const m = process.memoryUsage();
  const mark = { phase, when, rssMb: round(m.rss / 2 ** 20, 1), heapMb: round(m.heapUsed / 2 ** 20, 1), ...boxLoad() };
  rssLog.push(mark);
  console.error(
    `[rss] ${phase.padEnd(17)} ${when.padEnd(6)} rss ${mark.rssMb} MB, heap used ${mark.heapMb} MB; box load ${mark.load1}, cpu pressure ${mark.cpuPressure ?? '?'}%`,
  );
}

export function log(message: string): void {
  console.error(`[bench] ${message}`);
}

// ---------- database ----------

export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

function urlFor(database: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

/**
 * A brand-new database on the server for this bench run only; nothing is
 * ever written into an existing database. `drop()` removes it.
 */
export async function createBenchDatabase(): Promise<BenchDatabase> {
  const name = `fb_bench_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  let dropped = false;
  return {
    name,
    url: urlFor(name),
    async drop() {
      if (dropped) return;
      dropped = true;
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

export async function serverInfo(): Promise<{ version: string; settings: Record<string, string> }> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  await c.connect();
  try {
    const version = (await c.query<{ v: string }>('select version() as v')).rows[0]!.v;
    const settings: Record<string, string> = {};
    for (const name of ['synchronous_commit', 'fsync', 'wal_sync_method', 'shared_buffers', 'max_connections']) {
      settings[name] = (await c.query<Record<string, string>>(`show ${name}`)).rows[0]![name]!;
    }
    return { version, settings };
  } finally {
    await c.end();
  }
}

// ---------- the app ----------

export interface StartOptions {
  databaseUrl: string;
  playbooksDir: string;
  workers: number;
  listen?: boolean;
  pollMs?: number;
}

/** The real app, in this process, configured through loadConfig like `firebreak serve`. */
export async function startBenchApp(options: StartOptions): Promise<App> {
  const config = loadConfig({
    DATABASE_URL: options.databaseUrl,
    PORT: '0',
    HOST: '127.0.0.1',
    FIREBREAK_PLAYBOOKS: options.playbooksDir,
    FIREBREAK_POLICIES: resolve(ROOT, 'policies'),
    FIREBREAK_DATA_DIR: join(tmpdir(), 'fb-bench-unused'),
    FIREBREAK_WORKERS: String(options.workers),
    ...(options.pollMs !== undefined && { FIREBREAK_POLL_MS: String(options.pollMs) }),
    LOG_LEVEL: 'warn',
  });
  return startApp(config, { logger: createLogger('warn'), listen: options.listen ?? true });
}

/** A temporary playbooks folder: optionally a copy of the shipped playbooks, plus extra files. */
export async function tempPlaybooks(files: Record<string, string>, withShipped: boolean): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'fb-bench-playbooks-'));
  if (withShipped) await cp(join(ROOT, 'playbooks'), dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A playbook of `n` note steps (what the engine bench runs and the matching ingest folder holds). */
export function notePlaybook(name: string, alertname: string, n: number): string {
  const steps = Array.from({ length: n }, (_, i) => `  - id: note_${i + 1}\n    action: note\n    with: { text: "step ${i + 1} of ${n} of run \${{ run.id }}" }\n`).join('');
  return `name: ${name}\ndescription: Bench playbook of ${n} note steps\ntriggers:\n  - matchers: ['alertname="${alertname}"']\nsteps:\n${steps}`;
}

// ---------- evidence: database round trips ----------

let roundTrips = 0;
let counting = false;
const byQuery = new Map<string, number>();

const labels = new Map<string, string>();

/** First 100 characters of a statement, whitespace collapsed; cached per text so counting stays cheap. */
function queryLabel(arg: unknown): string {
  const text = typeof arg === 'string' ? arg : typeof arg === 'object' && arg && 'text' in arg ? String((arg as { text: unknown }).text) : '?';
  let label = labels.get(text);
  if (label === undefined) {
    // A batch (one round trip, several prepared statements with their literals): named by what it executes.
    const executed = [...text.matchAll(/\bexecute (b_\w+)/g)].map((m) => m[1]!.replace(/^b_fb_/, ''));
    label = executed.length > 0 ? `batch: ${[...new Set(executed)].join(' + ')}` : text.replace(/\s+/g, ' ').trim().slice(0, 100);
    if (labels.size < 10_000) labels.set(text, label);
  }
  return label;
}

/**
 * Count every query the process sends through `pg` (Pool.query goes through
 * Client.query), begin/commit included, by statement. Bench-only
 * instrumentation: it wraps the prototype, src/ is untouched.
 */
export function installRoundTripCounter(): void {
  if (counting) return;
  counting = true;
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]) {
    roundTrips += 1;
    const label = queryLabel(args[0]);
    byQuery.set(label, (byQuery.get(label) ?? 0) + 1);
    return original.apply(this, args);
  };
}

/** A snapshot of the per-statement counts. */
export function roundTripsByQuery(): Map<string, number> {
  return new Map(byQuery);
}

export function roundTripCount(): number {
  return roundTrips;
}

/** Committed transactions in a database so far (pg_stat_database, after a stats flush). */
export async function xactCommits(client: pg.Client | pg.Pool, database: string): Promise<number> {
  await client.query('select pg_stat_clear_snapshot()');
  const { rows } = await client.query<{ n: string }>('select xact_commit::text as n from pg_stat_database where datname = $1', [database]);
  return Number(rows[0]?.n ?? 0);
}

// ---------- evidence: CPU time per operation ----------
//
// Wall-clock figures on a shared box move with whatever else runs on it; CPU
// time spent per operation does not (much). Linux only: read from /proc.

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a task (process or thread) in ms, or undefined when it is gone / not Linux. */
function procCpuMs(statPath: string): number | undefined {
  try {
    const stat = readFileSync(statPath, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/** CPU time of this process's main thread (the app's event loop; the load generator runs in another thread). */
export function mainThreadCpuMs(): number {
  return procCpuMs(`/proc/self/task/${process.pid}/stat`) ?? NaN;
}

/** CPU time of the Postgres backends serving `database` (same box; needs /proc access to them). */
export class BackendCpu {
  private baseline = new Map<number, number>();

  constructor(
    private readonly admin: pg.Pool,
    private readonly database: string,
  ) {}

  private async snapshot(): Promise<Map<number, number>> {
    const { rows } = await this.admin.query<{ pid: number }>('select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [this.database]);
    const out = new Map<number, number>();
    for (const { pid } of rows) {
      const ms = procCpuMs(`/proc/${pid}/stat`);
      if (ms !== undefined) out.set(pid, ms);
    }
    return out;
  }

  async start(): Promise<void> {
    this.baseline = await this.snapshot();
  }

  /** CPU ms used since start() by backends alive now (new ones count from zero). */
  async elapsed(): Promise<number> {
    const now = await this.snapshot();
    let total = 0;
    for (const [pid, ms] of now) total += ms - (this.baseline.get(pid) ?? 0);
    return total;
  }
}
