/**
 * Group commit: notifications that arrive together are stored by one
 * statement, each answered only after that statement committed, each with its
 * own result; a group that fails is stored item by item, so one bad
 * notification neither loses nor mis-answers the others.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActionRegistry } from '../../src/actions/index.js';
import { Secrets } from '../../src/config/index.js';
import { Engine } from '../../src/engine/index.js';
import { Ingestor, type Alert, type Notification } from '../../src/ingest/index.js';
import type { PolicyGate } from '../../src/policy/types.js';
import { Timeline } from '../../src/timeline/index.js';
import { testAuditKey } from '../helpers/audit.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { genericAlert } from '../helpers/playbooks.js';
import { httpJson, startServer, type ServerProcess } from '../helpers/server.js';

let db: TestDatabase;
let ingestor: Ingestor;

beforeAll(async () => {
  db = await createTestDatabase();
  const logger = pino({ level: 'silent' });
  const timeline = new Timeline(testAuditKey().key);
  // No playbooks: this is about storing notifications, so the engine is only asked for (no) runs.
  const engine = new Engine({ pool: db.pool, databaseUrl: db.url, timeline, actions: createActionRegistry(), policy: () => ({}) as PolicyGate, playbooks: () => [], logger, secrets: new Secrets({}), httpAllow: [], playbooksDir: '.', workers: 0 });
  ingestor = new Ingestor(db.pool, timeline, engine.ingestHooks, logger);
});

afterAll(async () => {
  await db?.drop();
});

function notification(fingerprint: string, startsAt: string): Notification {
  const alert: Alert = { source: 'generic', fingerprint, status: 'firing', labels: { alertname: 'Group', n: fingerprint }, annotations: {}, startsAt, endsAt: null, summary: fingerprint, severity: '', generatorURL: '', raw: {} };
  return { source: 'generic', alerts: [alert], payload: { fingerprint } };
}

describe('ingest group commit', () => {
  it('stores notifications arriving together in one statement, each answered with its own result', async () => {
    const sent = Array.from({ length: 40 }, (_, i) => notification(`together-${i}`, new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString()));
    const results = await Promise.all(sent.map((n) => ingestor.ingest(n)));
    results.forEach((r, i) => {
      expect(r.stored).toBe(true);
      expect(r.episodes.map((e) => e.fingerprint)).toEqual([`together-${i}`]);
    });
    const { rows } = await db.pool.query(`select count(*)::int as n, count(distinct xmin::text)::int as transactions from alert_notifications where payload->>'fingerprint' like 'together-%'`);
    expect(rows[0].n).toBe(40);
    // Fewer commits than notifications: they were grouped.
    expect(rows[0].transactions).toBeLessThan(40);
  });

  it('a group that fails is stored item by item: the bad one fails alone, the others are stored and answered', async () => {
    const good = Array.from({ length: 20 }, (_, i) => notification(`mixed-${i}`, new Date(Date.UTC(2025, 1, 1, 0, 0, i)).toISOString()));
    // Year 0 passes JavaScript but not Postgres: the group's statement fails.
    const bad = notification('mixed-bad', '0000-01-01T00:00:00.000Z');
    const settled = await Promise.allSettled([...good.slice(0, 10), bad, ...good.slice(10)].map((n) => ingestor.ingest(n)));
    const answers = settled.map((s) => (s.status === 'fulfilled' ? s.value.episodes.map((e) => e.fingerprint)[0] : 'rejected'));
    expect(answers).toEqual([...good.slice(0, 10).map((n) => n.alerts[0]!.fingerprint), 'rejected', ...good.slice(10).map((n) => n.alerts[0]!.fingerprint)]);
    const { rows } = await db.pool.query(`select alert->>'fingerprint' as f from alert_episodes where fingerprint like 'mixed-%' order by starts_at`);
    expect(rows.map((r) => r.f)).toEqual(good.map((n) => n.alerts[0]!.fingerprint));
  });

  it('two notifications about one episode in one turn are both stored (in two groups), repeat counted', async () => {
    const startsAt = new Date(Date.UTC(2025, 2, 1)).toISOString();
    const [a, b] = await Promise.all([ingestor.ingest(notification('same-episode', startsAt)), ingestor.ingest(notification('same-episode', startsAt))]);
    expect([a.episodes[0]!.deliveries, b.episodes[0]!.deliveries].sort()).toEqual([1, 2]);
    expect(a.episodes[0]!.id).toBe(b.episodes[0]!.id);
  });
});

describe('timestamps Postgres cannot store', () => {
  let server: ServerProcess;
  afterAll(async () => server?.stop());

  it('are a 400 naming the field, not a 500', async () => {
    server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: (await import('node:os')).tmpdir() });
    const res = await httpJson('POST', `${server.url}/hooks/generic`, genericAlert({ alertname: 'Old' }, { startsAt: '0000-06-01T00:00:00Z' }));
    expect(res.status).toBe(400);
    expect(res.body.details.map((d: any) => d.path)).toEqual(['startsAt']);
  });
});
