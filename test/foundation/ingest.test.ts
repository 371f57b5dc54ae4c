import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { httpJson, ROOT, startServer, type ServerProcess } from '../helpers/server.js';

let db: TestDatabase;
let server: ServerProcess;
const TOKEN = 'webhook-token-for-tests';
const auth = { authorization: `Bearer ${TOKEN}` };
let sample: any;

beforeAll(async () => {
  db = await createTestDatabase();
  sample = JSON.parse(await readFile(join(ROOT, 'test/fixtures/alertmanager-v4.json'), 'utf8'));
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_WEBHOOK_TOKEN: TOKEN, FIREBREAK_WORKERS: '0' });
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

const post = (path: string, body: unknown, headers: Record<string, string> = auth) => httpJson('POST', `${server.url}${path}`, body, headers);

describe('POST /hooks/alertmanager', () => {
  it('stores a real v4 group (all fields, several alerts) before answering 202', async () => {
    const res = await post('/hooks/alertmanager', sample);
    expect(res.status).toBe(202);
    expect(res.body.episodes).toHaveLength(2);
    const { rows } = await db.pool.query("select fingerprint, status, severity, summary, labels, generator_url, starts_at, ends_at, deliveries from alert_episodes where source = 'alertmanager' order by fingerprint");
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ fingerprint: 'a3c5f1d2e4b6c8a0', status: 'firing', severity: 'critical', summary: 'checkout 5xx rate above 5%', deliveries: 1, ends_at: null });
    expect(rows[0].labels).toEqual(sample.alerts[0].labels);
    expect(rows[0].starts_at.toISOString()).toBe('2026-11-21T09:14:30.123Z');
    const raw = await db.pool.query("select payload from alert_notifications where source = 'alertmanager'");
    expect(raw.rows[0].payload.groupKey).toBe(sample.groupKey);
  });

  it('5 identical sends make 1 episode per alert, with the deliveries counted', async () => {
    const again = structuredClone(sample);
    again.alerts = [sample.alerts[0]];
    again.alerts[0] = { ...again.alerts[0], fingerprint: 'c0ffee0000000001' };
    for (let i = 0; i < 5; i++) expect((await post('/hooks/alertmanager', again)).status).toBe(202);
    const { rows } = await db.pool.query("select deliveries from alert_episodes where fingerprint = 'c0ffee0000000001'");
    expect(rows).toEqual([{ deliveries: 5 }]);
    const alerts = await httpJson('GET', `${server.url}/api/alerts?source=alertmanager`);
    const episode = alerts.body.items.find((a: any) => a.fingerprint === 'c0ffee0000000001');
    expect(episode).toMatchObject({ source: 'alertmanager', status: 'firing', deliveries: 5 });
    // The sample high-error-rate playbook matches: one run however often the episode is delivered.
    expect(episode.runs).toHaveLength(1);
    expect((await db.pool.query("select count(*)::int as n from runs r join alert_episodes e on e.id = r.episode_id where e.fingerprint = 'c0ffee0000000001'")).rows[0].n).toBe(1);
  });

  it('a resolved notification closes the episode and a later firing repeat does not reopen it', async () => {
    const alert = { ...sample.alerts[1], fingerprint: 'dead00000000beef' };
    const firing = { ...sample, alerts: [alert] };
    expect((await post('/hooks/alertmanager', firing)).status).toBe(202);
    const resolved = { ...sample, status: 'resolved', alerts: [{ ...alert, status: 'resolved', endsAt: '2026-11-21T09:30:00Z' }] };
    expect((await post('/hooks/alertmanager', resolved)).status).toBe(202);
    expect((await post('/hooks/alertmanager', firing)).status).toBe(202);
    const { rows } = await db.pool.query("select status, ends_at, resolved_at is not null as resolved from alert_episodes where fingerprint = 'dead00000000beef'");
    expect(rows).toEqual([{ status: 'resolved', ends_at: new Date('2026-11-21T09:30:00Z'), resolved: true }]);
  });

  it('bad payloads get 400 naming each bad field, and nothing is stored', async () => {
    const before = (await db.pool.query('select count(*)::int as n from alert_notifications')).rows[0].n;
    const bad = structuredClone(sample);
    bad.version = '3';
    bad.alerts[0].status = 'burning';
    bad.alerts[1].startsAt = 'yesterday';
    bad.alerts[1].labels.severity = 5;
    delete bad.receiver;
    const res = await post('/hooks/alertmanager', bad);
    expect(res.status).toBe(400);
    const paths = res.body.details.map((d: any) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['version', 'alerts.0.status', 'alerts.1.startsAt', 'alerts.1.labels.severity', 'receiver']));
    expect(res.body.error).toMatch(/invalid/i);
    const notJson = await post('/hooks/alertmanager', '{"version": "4", ');
    expect(notJson.status).toBe(400);
    expect(notJson.body.details[0].path).toBe('(body)');
    expect((await post('/hooks/alertmanager', '[]')).status).toBe(400);
    expect((await post('/hooks/alertmanager', '')).status).toBe(400);
    expect((await post('/hooks/alertmanager', { ...sample, alerts: [] })).body.details[0].path).toBe('alerts');
    expect((await db.pool.query('select count(*)::int as n from alert_notifications')).rows[0].n).toBe(before);
  });

  it('over 1 MiB is 413; a missing or wrong token is 401', async () => {
    const huge = structuredClone(sample);
    huge.commonAnnotations.padding = 'x'.repeat(1024 * 1024 + 10);
    const big = await post('/hooks/alertmanager', huge);
    expect(big.status).toBe(413);
    expect(big.body.error).toMatch(/exceeds/);
    expect((await post('/hooks/alertmanager', sample, {})).status).toBe(401);
    expect((await post('/hooks/alertmanager', sample, { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await post('/hooks/alertmanager', sample, { authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
    // still serving afterwards
    expect((await httpJson('GET', `${server.url}/healthz`)).status).toBe(200);
  });
});

describe('POST /hooks/generic', () => {
  it('accepts one alert or a list; without startsAt it joins the open episode of its fingerprint', async () => {
    const one = { labels: { alertname: 'QueueBacklog', service: 'mailer' }, annotations: { summary: 'mail queue backing up' }, severity: 'warning' };
    const r1 = await post('/hooks/generic', one);
    expect(r1.status).toBe(202);
    const r2 = await post('/hooks/generic', { alerts: [one] });
    expect(r2.status).toBe(202);
    expect(r2.body.episodes[0].id).toBe(r1.body.episodes[0].id);
    expect(r2.body.episodes[0].deliveries).toBe(2);
    const resolved = await post('/hooks/generic', { ...one, status: 'resolved' });
    expect(resolved.body.episodes[0]).toMatchObject({ id: r1.body.episodes[0].id, status: 'resolved' });
  });

  it('rejects unknown fields and wrong types by name', async () => {
    const res = await post('/hooks/generic', { labels: { a: 'b' }, stauts: 'firing', startsAt: 12 });
    expect(res.status).toBe(400);
    const paths = res.body.details.map((d: any) => d.path).join(' ');
    expect(paths).toMatch(/startsAt/);
  });
});
