/**
 * `firebreak fire` posts a sample alert as if it fired now: the sample's 2024
 * start time is moved to the present (durations and T+ offsets then read
 * like a real incident), unless `--keep-times`.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { httpJson, ROOT, runCli, startServer, type ServerProcess } from '../helpers/server.js';

let db: TestDatabase;
let server: ServerProcess;
const SAMPLE = join(ROOT, 'examples/alerts/high-error-rate.json');

beforeAll(async () => {
  db = await createTestDatabase();
  const dir = await playbooksDir({
    'noted.yaml': `
name: noted
triggers: [{ matchers: ['alertname="HighErrorRate"'] }]
steps:
  - id: note
    action: note
    with: { text: "\${{ alert.startsAt }}" }
`,
  });
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir });
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

async function episodes(): Promise<Array<{ fingerprint: string; startsAt: string }>> {
  return (await httpJson('GET', `${server.url}/api/alerts`)).body.items;
}

describe('firebreak fire', () => {
  it('stamps a sample alert with the current time', async () => {
    const before = Date.now();
    const res = await runCli(['fire', SAMPLE], { FIREBREAK_URL: server.url });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/accepted \(HTTP 202\): 1 alert\(s\), runs: \S+/);
    expect(res.stdout).toMatch(/times moved \d+d.* forward to now/);
    const [episode] = await episodes();
    const startsAt = Date.parse(episode!.startsAt);
    expect(startsAt).toBeGreaterThanOrEqual(before - 1_000);
    expect(startsAt).toBeLessThanOrEqual(Date.now() + 1_000);
    // The file itself is left alone.
    expect(JSON.parse(await readFile(SAMPLE, 'utf8')).alerts[0].startsAt).toBe('2024-05-14T09:12:30.123Z');
  });

  it('--keep-times sends the times as written', async () => {
    const res = await runCli(['fire', SAMPLE, '--keep-times'], { FIREBREAK_URL: server.url });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).not.toMatch(/times moved/);
    expect((await episodes()).map((e) => e.startsAt)).toContain('2024-05-14T09:12:30.123Z');
  });

  it('moves every time by the same amount: later alerts stay later, a zero endsAt stays zero', async () => {
    const { stampWithNow } = await import('../../src/cli/stamp.js');
    const now = Date.parse('2026-06-01T12:00:00Z');
    const { payload, shiftedMs } = stampWithNow(
      {
        alerts: [
          { startsAt: '2024-05-14T07:10:00Z', endsAt: '0001-01-01T00:00:00Z' },
          { startsAt: '2024-05-14T09:12:30+02:00', endsAt: '2024-05-14T09:20:30+02:00' },
        ],
        date: '1715670000000', // 2024-05-14T07:00:00Z, before the alerts
        labels: { startsAt: 'a label, not a time' },
      },
      now,
    );
    expect(shiftedMs).toBeGreaterThan(0);
    expect(payload.alerts[0]!.endsAt).toBe('0001-01-01T00:00:00Z');
    expect(payload.alerts[1]!.startsAt).toBe('2026-06-01T12:00:00.000Z');
    expect(payload.alerts[1]!.endsAt).toBe('2026-06-01T12:08:00.000Z');
    expect(Date.parse(payload.alerts[0]!.startsAt)).toBe(now - (Date.parse('2024-05-14T09:12:30+02:00') - Date.parse('2024-05-14T07:10:00Z')));
    expect(payload.labels.startsAt).toBe('a label, not a time');
    expect(payload.date).toMatch(/^\d{13}$/);
  });
});
