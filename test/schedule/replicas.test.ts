/**
 * A schedule ticking while three server processes (replicas) run on one
 * database starts exactly one run per tick; schedules follow playbook reloads.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, startServer, type ServerProcess } from '../helpers/server.js';

let db: TestDatabase;
let dir: string;
const replicas: ServerProcess[] = [];

const scheduled = (name: string, schedule: string) => `
name: ${name}
triggers:
  - schedule: "${schedule}"
steps:
  - id: tick
    action: note
    with: { text: "tick \${{ run.params.tick }}" }
`;

interface ScheduledRun {
  id: string;
  playbook: string;
  dedup_key: string;
  started_by: string;
  trigger: string;
  params: { tick: string; schedule: string; timezone: string };
  created_at: Date;
}

async function scheduledRuns(playbook: string): Promise<ScheduledRun[]> {
  const { rows } = await db.pool.query<ScheduledRun>(
    `select id, playbook, dedup_key, started_by, trigger, params, created_at from runs where playbook = $1 order by dedup_key, created_at`,
    [playbook],
  );
  return rows;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await playbooksDir({ 'drill.yaml': scheduled('drill', '*/2 * * * * *') });
  const env = { DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, LOG_LEVEL: 'info', FIREBREAK_WORKERS: '2' };
  // Start one first so the migrations run once, then the other two side by side.
  replicas.push(await startServer(env));
  replicas.push(...(await Promise.all([startServer(env), startServer(env)])));
});

afterAll(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('schedule triggers across three replicas', () => {
  it('start exactly one run per tick, recorded as started by the schedule', async () => {
    const from = Date.now();
    await sleep(9_000);
    const runs = (await scheduledRuns('drill')).filter((r) => r.created_at.getTime() >= from);
    const byKey = new Map<string, ScheduledRun[]>();
    for (const run of runs) byKey.set(run.dedup_key, [...(byKey.get(run.dedup_key) ?? []), run]);
    // ~4 ticks in 9 s; never two runs for one tick.
    expect(byKey.size).toBeGreaterThanOrEqual(3);
    for (const [key, list] of byKey) expect(list, key).toHaveLength(1);
    const ticks = [...byKey.keys()].map((k) => {
      expect(k).toMatch(/^schedule:drill:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
      return new Date(k.slice('schedule:drill:'.length));
    });
    for (const t of ticks) expect(t.getUTCSeconds() % 2).toBe(0);
    // No tick was skipped between the first and the last one seen.
    expect((ticks.at(-1)!.getTime() - ticks[0]!.getTime()) / 2_000 + 1).toBe(ticks.length);
    for (const run of runs) {
      expect(run).toMatchObject({ trigger: 'schedule', started_by: 'schedule', params: { schedule: '*/2 * * * * *', timezone: 'UTC' } });
      expect(run.dedup_key).toBe(`schedule:drill:${run.params.tick}`);
    }
    // Every replica scheduled the ticks (no leader): each one logged asking for them.
    for (const replica of replicas) expect(replica.logs()).toMatch(/scheduled run (started|already started by another replica)/);
    const created = replicas.map((r) => (r.logs().match(/"msg":"scheduled run started"/g) ?? []).length);
    expect(created.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(byKey.size);
    // ...and for most ticks the others found the run already there: the key, not luck, made it one.
    const found = replicas.map((r) => (r.logs().match(/"msg":"scheduled run already started by another replica"/g) ?? []).length);
    expect(found.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(byKey.size);

    // They are normal runs: visible over the API, and they run.
    const api = await httpJson('GET', `${replicas[1]!.url}/api/runs/${runs[0]!.id}`);
    expect(api.body).toMatchObject({ playbook: 'drill', trigger: 'schedule', startedBy: 'schedule' });
    await eventually(async () => (await httpJson('GET', `${replicas[2]!.url}/api/runs/${runs[0]!.id}`)).body.status === 'succeeded', 20_000);
  });

  it('follow playbook reloads: a removed schedule stops, a new one starts, on every replica', async () => {
    await rm(join(dir, 'drill.yaml'));
    await writeFile(join(dir, 'report.yaml'), scheduled('report', '*/3 * * * * *'));
    // Each replica reloads ~200 ms after the change; give them a moment, then watch.
    await sleep(1_500);
    const since = new Date();
    await sleep(7_000);
    const drill = (await scheduledRuns('drill')).filter((r) => r.created_at >= since);
    expect(drill).toEqual([]);
    const report = await scheduledRuns('report');
    const keys = new Set(report.map((r) => r.dedup_key));
    expect(keys.size).toBe(report.length);
    expect(report.length).toBeGreaterThanOrEqual(2);
    for (const r of report) expect(new Date(r.params.tick).getUTCSeconds() % 3).toBe(0);
    for (const replica of replicas) expect(replica.logs()).toMatch(/"playbook":"report"[^\n]*"msg":"schedule registered"|"msg":"schedule registered"[^\n]*"playbook":"report"/);
  });
});
