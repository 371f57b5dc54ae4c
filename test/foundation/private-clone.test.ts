/**
 * A newcomer's clone under a private folder (root's home is 0700, so is
 * `mktemp -d`): `npm start` semantics (`node bin/firebreak.js serve`, no
 * DATABASE_URL) must come up with embedded Postgres, and an embedded-Postgres
 * failure must be one line that says what to do, exit 1.
 *
 * The clone is a faithful copy of what `git clone && npm ci` leaves: the
 * tracked files that serve needs, the built dist/ and node_modules (hard
 * links: same bytes, new paths under the private folder).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, httpJson, ROOT } from '../helpers/server.js';

const execFileAsync = promisify(execFile);

let privateDir = '';
const clusters: string[] = [];
afterAll(async () => {
  if (privateDir) await rm(privateDir, { recursive: true, force: true });
  for (const c of clusters) await rm(c, { recursive: true, force: true });
});

async function privateClone(): Promise<string> {
  privateDir = await mkdtemp(join(tmpdir(), 'fb-clone-'));
  expect((await stat(privateDir)).mode & 0o777).toBe(0o700);
  const clone = join(privateDir, 'firebreak');
  await mkdir(clone);
  for (const entry of ['package.json', 'bin', 'dist', 'src', 'playbooks', 'policies', 'examples', 'schema']) await cp(join(ROOT, entry), join(clone, entry), { recursive: true });
  await execFileAsync('cp', ['-al', join(ROOT, 'node_modules'), join(clone, 'node_modules')]);
  return clone;
}

function serve(cwd: string, env: Record<string, string>) {
  const child = spawn(process.execPath, ['bin/firebreak.js', 'serve'], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn', FIREBREAK_WORKERS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

describe('a clone under a private (0700) folder', () => {
  it('starts with embedded Postgres (as root: binaries and cluster where the postgres user can reach them) and answers /readyz', async () => {
    const clone = await privateClone();
    const port = await freePort();
    const server = serve(clone, { PORT: String(port) });
    try {
      const deadline = Date.now() + 120_000;
      let ready: { status: number; body: any } | undefined;
      while (Date.now() < deadline && server.child.exitCode === null) {
        ready = await httpJson('GET', `http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        if (ready?.status === 200) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const { stdout, stderr } = server.output();
      expect(stderr + stdout, 'no unhandled error event').not.toMatch(/Unhandled 'error' event|EACCES/);
      expect(ready?.status, `serve did not become ready:\n${stderr}\n${stdout}`).toBe(200);
      expect(ready!.body.checks.database.ok).toBe(true);
    } finally {
      server.child.kill('SIGTERM');
      const code = await server.exited;
      const location = join(clone, '.firebreak', 'pg-location');
      if (existsSync(location)) clusters.push(join((await readFile(location, 'utf8')).trim(), '..'));
      expect(code).toBe(0);
    }
  });

  it('turns an embedded-Postgres failure into one line that says what to do, and exits 1', async () => {
    const clone = privateDir ? join(privateDir, 'firebreak') : await privateClone();
    // A data dir holding something that is not a cluster Postgres can start.
    const dataDir = join(clone, 'broken-data');
    await mkdir(join(dataDir, 'pg'), { recursive: true });
    await writeFile(join(dataDir, 'pg', 'PG_VERSION'), '9.6\n');
    const server = serve(clone, { PORT: String(await freePort()), FIREBREAK_DATA_DIR: dataDir });
    const code = await server.exited;
    const { stderr } = server.output();
    expect(code).toBe(1);
    expect(stderr).not.toMatch(/Unhandled|at .*\.js:\d+/);
    const lines = stderr.trim().split('\n');
    expect(lines, stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/embedded PostgreSQL/);
    expect(lines[0]).toContain(dataDir);
    expect(lines[0]).toMatch(/FIREBREAK_DATA_DIR|DATABASE_URL/);
  });
});
