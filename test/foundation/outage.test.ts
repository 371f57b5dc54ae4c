/**
 * The database goes away under a running server: webhooks answer 503 (so
 * Alertmanager retries), never 500, and the server serves again once it is back.
 * Uses its own embedded Postgres so stopping it disturbs no other test.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../../src/store/index.js';
import { eventually, httpJson, ROOT, startServer, type ServerProcess } from '../helpers/server.js';

let pg: EmbeddedPostgresHandle | undefined;
let server: ServerProcess | undefined;
let dir = '';

afterAll(async () => {
  await server?.stop();
  await pg?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('database outage', () => {
  it('answers 503 while Postgres is down and 202 again once it is back, without losing what was accepted', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fb-outage-'));
    await chmod(dir, 0o755); // embedded Postgres runs as the postgres user
    pg = await startEmbeddedPostgres({ dataDir: dir });
    const url = pg.url;
    const port = new URL(url).port;
    server = await startServer({ DATABASE_URL: url, FIREBREAK_WORKERS: '1' });
    const sample = JSON.parse(await readFile(join(ROOT, 'test/fixtures/alertmanager-v4.json'), 'utf8'));
    const send = (fp: string) => httpJson('POST', `${server!.url}/hooks/alertmanager`, { ...sample, alerts: [{ ...sample.alerts[0], fingerprint: fp }] });
    expect((await send('0000000000000001')).status).toBe(202);

    await pg.stop();
    const down = await send('0000000000000002');
    expect(down.status).toBe(503);
    expect(down.headers['retry-after']).toBeDefined();
    expect((await httpJson('GET', `${server.url}/readyz`)).status).toBe(503);
    expect((await httpJson('GET', `${server.url}/healthz`)).status).toBe(200);

    // Same data dir, same port: the server's pool reconnects by itself.
    pg = await startEmbeddedPostgresOnPort(dir, Number(port));
    const back = await eventually(async () => {
      const r = await send('0000000000000002');
      return r.status === 202 ? r : undefined;
    }, 30_000, 250);
    expect(back.status).toBe(202);
    const alerts = await httpJson('GET', `${server.url}/api/alerts?limit=10`);
    expect(alerts.body.items.map((a: any) => a.fingerprint).sort()).toEqual(['0000000000000001', '0000000000000002']);
    expect(server.child.exitCode).toBeNull();
  });
});

async function startEmbeddedPostgresOnPort(dataDir: string, port: number): Promise<EmbeddedPostgresHandle> {
  const handle = await startEmbeddedPostgres({ dataDir, port });
  return handle;
}
