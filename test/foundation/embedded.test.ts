/**
 * The one-laptop default: no DATABASE_URL, so `firebreak serve` runs embedded
 * Postgres in FIREBREAK_DATA_DIR; data survives a restart, and even a SIGKILL.
 */
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { httpJson, ROOT, runCli, startServer, type ServerProcess } from '../helpers/server.js';

let dir = '';
let server: ServerProcess | undefined;
afterAll(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('embedded PostgreSQL (DATABASE_URL unset)', () => {
  it('initialises on first start, keeps data across a clean restart and across SIGKILL', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fb-embedded-'));
    await chmod(dir, 0o755); // embedded Postgres runs as the postgres user
    const env = { FIREBREAK_DATA_DIR: join(dir, 'data'), DATABASE_URL: undefined, FIREBREAK_WORKERS: '1' };
    const sample = JSON.parse(await readFile(join(ROOT, 'test/fixtures/alertmanager-v4.json'), 'utf8'));

    server = await startServer(env, { readyTimeoutMs: 90_000 });
    const ready = await httpJson('GET', `${server.url}/readyz`);
    expect(ready.body.checks.database.ok).toBe(true);
    expect((await httpJson('POST', `${server.url}/hooks/alertmanager`, sample)).status).toBe(202);
    expect(await server.stop('SIGTERM')).toBe(0);

    server = await startServer(env, { readyTimeoutMs: 90_000 });
    const alerts = await httpJson('GET', `${server.url}/api/alerts`);
    expect(alerts.body.items.map((a: any) => a.fingerprint).sort()).toEqual(['a3c5f1d2e4b6c8a0', 'b7d9e1f3a5c7e9b1']);

    // A hard kill leaves the postgres child behind; the next start takes the cluster over.
    await server.stop('SIGKILL');
    server = await startServer(env, { readyTimeoutMs: 90_000 });
    expect((await httpJson('GET', `${server.url}/api/alerts`)).body.items).toHaveLength(2);

    // The CLI finds the running embedded cluster for audit verify.
    const audit = await runCli(['audit', 'verify'], { FIREBREAK_DATA_DIR: join(dir, 'data') });
    expect(audit.stdout + audit.stderr).toMatch(/audit ok/);
    expect(audit.code).toBe(0);
    expect(await server.stop('SIGTERM')).toBe(0);
    server = undefined;
  });

  it('works from a data dir below a private (0700) folder, keeping its data across restarts', async () => {
    const privateDir = await mkdtemp(join(tmpdir(), 'fb-private-')); // 0700: the postgres user cannot enter it
    const env = { FIREBREAK_DATA_DIR: join(privateDir, 'data'), DATABASE_URL: undefined, FIREBREAK_WORKERS: '0' };
    const sample = JSON.parse(await readFile(join(ROOT, 'test/fixtures/alertmanager-v4.json'), 'utf8'));
    let location = '';
    try {
      server = await startServer(env, { readyTimeoutMs: 90_000 });
      expect((await httpJson('POST', `${server.url}/hooks/alertmanager`, sample)).status).toBe(202);
      expect(await server.stop('SIGTERM')).toBe(0);
      if (process.getuid?.() === 0) {
        // As root the cluster runs as the postgres user, so it was placed where that user can reach it.
        location = (await readFile(join(privateDir, 'data', 'pg-location'), 'utf8')).trim();
        expect(existsSync(join(location, 'PG_VERSION'))).toBe(true);
      }
      server = await startServer(env, { readyTimeoutMs: 90_000 });
      expect((await httpJson('GET', `${server.url}/api/alerts`)).body.items).toHaveLength(2);
      expect(await server.stop('SIGTERM')).toBe(0);
      server = undefined;
    } finally {
      await rm(privateDir, { recursive: true, force: true });
      if (location) await rm(join(location, '..'), { recursive: true, force: true });
    }
  });
});
