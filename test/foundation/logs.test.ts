/**
 * Logs people can read: readable lines when stdout is a terminal (pino-pretty),
 * JSON lines otherwise (log collectors). The terminal is a real pseudo-terminal
 * from util-linux `script`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { BIN, freePort, startServer } from '../helpers/server.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const hasScript = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('server logs', () => {
  it.skipIf(!hasScript)('are readable lines on a terminal', async () => {
    const port = await freePort();
    const child = spawn('script', ['-qec', `${process.execPath} ${BIN} serve`, '/dev/null'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'dumb', DATABASE_URL: db.url, PORT: String(port), FIREBREAK_WORKERS: '0', LOG_LEVEL: 'info' },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    try {
      const deadline = Date.now() + 60_000;
      while (!/firebreak is serving/.test(output) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
      // eslint-disable-next-line no-control-regex
      const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
      expect(plain).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: firebreak is serving/m);
      expect(plain).not.toMatch(/^\{"level"/m);
    } finally {
      process.kill(-child.pid!, 'SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('are JSON lines when stdout is not a terminal', async () => {
    const server = await startServer({ DATABASE_URL: db.url, FIREBREAK_WORKERS: '0', LOG_LEVEL: 'info' });
    await server.stop();
    const serving = server
      .logs()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; level?: number })
      .find((l) => l.msg === 'firebreak is serving');
    expect(serving).toMatchObject({ level: 30 });
  });
});
