/**
 * The Scheduler on its own: real node-cron timers, a stand-in for
 * Engine.startRun that keeps the dedup-key contract (one run per key).
 */
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DatabaseUnavailableError, NotFoundError } from '../../src/errors.js';
import type { Trigger } from '../../src/playbooks/index.js';
import { scheduleDedupKey, Scheduler, type ScheduledRunRequest } from '../../src/schedule/index.js';

const logger = pino({ level: 'silent' });

/** One "runs" table shared by every replica: unique on dedupKey, like the real one. */
function runsTable() {
  const runs = new Map<string, { runId: string; request: ScheduledRunRequest }>();
  const calls: ScheduledRunRequest[] = [];
  let next = 0;
  return {
    runs,
    calls,
    startRun: async (request: ScheduledRunRequest) => {
      calls.push(request);
      await new Promise((r) => setTimeout(r, Math.random() * 20)); // replicas race
      const existing = runs.get(request.dedupKey);
      if (existing) return { runId: existing.runId, created: false };
      const runId = `run-${++next}`;
      runs.set(request.dedupKey, { runId, request });
      return { runId, created: true };
    },
  };
}

const pb = (name: string, ...triggers: Trigger[]) => ({ name, triggers });
const every = (schedule: string, timezone?: string): Trigger => ({ kind: 'schedule', schedule, ...(timezone && { timezone }) });

const schedulers: Scheduler[] = [];
function scheduler(startRun: (r: ScheduledRunRequest) => Promise<{ runId: string; created: boolean }>, retryDelaysMs?: number[]) {
  const s = new Scheduler({ startRun, logger, ...(retryDelaysMs && { retryDelaysMs }) });
  schedulers.push(s);
  return s;
}

afterEach(async () => {
  await Promise.all(schedulers.splice(0).map((s) => s.stop()));
});

describe('scheduleDedupKey', () => {
  it('is schedule:<playbook>:<tick in ISO UTC>, whole seconds', () => {
    expect(scheduleDedupKey('drill', new Date('2026-11-22T10:00:00.000Z'))).toBe('schedule:drill:2026-11-22T10:00:00.000Z');
    expect(scheduleDedupKey('drill', new Date('2026-11-22T10:00:00.731Z'))).toBe('schedule:drill:2026-11-22T10:00:00.000Z');
  });
});

describe('Scheduler', () => {
  it('three replicas ticking the same cron ask for the same key per tick: one run each tick', async () => {
    const table = runsTable();
    const replicas = [scheduler(table.startRun), scheduler(table.startRun), scheduler(table.startRun)];
    for (const r of replicas) r.sync([pb('every-second', every('* * * * * *')), pb('manual-only')]);
    await new Promise((r) => setTimeout(r, 3_000));
    // Stop mid-second, away from a tick, so no tick is cut short on some replicas only.
    await new Promise((r) => setTimeout(r, (1_500 - (Date.now() % 1_000)) % 1_000));
    await Promise.all(replicas.map((r) => r.stop()));
    const keys = [...table.runs.keys()].sort();
    expect(keys.length).toBeGreaterThanOrEqual(2);
    for (const key of keys) expect(key).toMatch(/^schedule:every-second:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    // Replicas ask for ticks independently (no leader) and each tick made one run. A replica
    // starved of CPU may miss a tick of its own; the others still cover it.
    const perKey = new Map<string, number>();
    for (const c of table.calls) perKey.set(c.dedupKey, (perKey.get(c.dedupKey) ?? 0) + 1);
    expect([...perKey.values()].every((n) => n >= 1 && n <= 3)).toBe(true);
    expect([...perKey.values()].some((n) => n > 1)).toBe(true);
    expect(table.runs.size).toBe(perKey.size);
    // Ticks fall on whole seconds, one run each.
    const times = keys.map((k) => Date.parse(k.slice('schedule:every-second:'.length)));
    times.slice(1).forEach((t, i) => expect((t - times[i]!) % 1_000).toBe(0));
    const request = table.runs.get(keys[0]!)!.request;
    expect(request).toMatchObject({ playbook: 'every-second', startedBy: 'schedule', trigger: 'schedule', params: { schedule: '* * * * * *', timezone: 'UTC', tick: keys[0]!.slice('schedule:every-second:'.length) } });
  });

  it('re-registers on sync: new triggers start, removed ones stop, unchanged ones keep their task', () => {
    const s = scheduler(async () => ({ runId: 'x', created: true }));
    s.sync([pb('a', every('0 * * * *')), pb('b', every('*/5 * * * *'), every('0 12 * * *', 'Asia/Kolkata'))]);
    expect(s.list().map((e) => [e.playbook, e.schedule, e.timezone])).toEqual([
      ['a', '0 * * * *', 'UTC'],
      ['b', '*/5 * * * *', 'UTC'],
      ['b', '0 12 * * *', 'Asia/Kolkata'],
    ]);
    const tasks = (s as unknown as { entries: Map<string, { task: unknown }> }).entries;
    const aTask = [...tasks.values()][0]!.task;
    s.sync([pb('a', every('0 * * * *')), pb('b', every('*/10 * * * *')), pb('c')]);
    expect(s.list().map((e) => [e.playbook, e.schedule])).toEqual([
      ['a', '0 * * * *'],
      ['b', '*/10 * * * *'],
    ]);
    expect([...tasks.values()][0]!.task).toBe(aTask);
    s.sync([]);
    expect(s.list()).toEqual([]);
  });

  it('fires in UTC by default and in the trigger time zone when given', () => {
    const s = scheduler(async () => ({ runId: 'x', created: true }));
    s.sync([pb('utc', every('0 9 * * *')), pb('kolkata', every('0 9 * * *', 'Asia/Kolkata'))]);
    const next = Object.fromEntries(s.list().map((e) => [e.playbook, new Date(e.nextRun!)]));
    expect([next.utc!.getUTCHours(), next.utc!.getUTCMinutes()]).toEqual([9, 0]);
    // 09:00 in Kolkata (UTC+05:30, no DST) is 03:30 UTC.
    expect([next.kolkata!.getUTCHours(), next.kolkata!.getUTCMinutes()]).toEqual([3, 30]);
  });

  it('retries a tick while the database is unreachable, with the same key', async () => {
    const keys: string[] = [];
    let failures = 2;
    const s = scheduler(async (r) => {
      keys.push(r.dedupKey);
      if (failures-- > 0) throw new DatabaseUnavailableError('connect ECONNREFUSED');
      return { runId: 'r1', created: true };
    }, [10, 10, 10]);
    const result = await s.fire('drill', new Date('2026-11-22T10:00:00.250Z'), '0 10 * * *');
    expect(result).toMatchObject({ runId: 'r1', created: true, dedupKey: 'schedule:drill:2026-11-22T10:00:00.000Z' });
    expect(keys).toEqual(Array(3).fill('schedule:drill:2026-11-22T10:00:00.000Z'));
  });

  it('gives up after its retries, skips a playbook that is gone, and never throws', async () => {
    let calls = 0;
    const down = scheduler(async () => {
      calls++;
      throw new DatabaseUnavailableError('down');
    }, [5, 5]);
    expect(await down.fire('drill', new Date())).toBeUndefined();
    expect(calls).toBe(3);
    const gone = scheduler(async () => {
      throw new NotFoundError('playbook drill not found');
    });
    expect(await gone.fire('drill', new Date())).toBeUndefined();
    const broken = scheduler(async () => {
      throw new Error('bug');
    }, [5]);
    expect(await broken.fire('drill', new Date())).toBeUndefined();
  });

  it('stop() ends a retry wait at once', async () => {
    const s = scheduler(async () => {
      throw new DatabaseUnavailableError('down');
    }, [60_000]);
    const pending = s.fire('drill', new Date());
    await new Promise((r) => setTimeout(r, 20));
    const started = Date.now();
    await s.stop();
    expect(await pending).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
