/**
 * POST /hooks/grafana with Grafana's documented webhook payload: normalised
 * alerts, episodes and dedup, resolves, field-level 400s, HMAC signatures.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { startServer, type ServerProcess } from '../helpers/server.js';
import { episodes, expectFieldError, fixture, notificationCount, playbook, postRaw, timelineKinds } from './helpers.js';

const SECRET = 'grafana-hmac-secret-for-tests';
const TOKEN = 'webhook-token-for-grafana-tests';
let db: TestDatabase;
let open: ServerProcess; // no FIREBREAK_GRAFANA_SECRET: unsigned deliveries are accepted
let signed: ServerProcess; // FIREBREAK_GRAFANA_SECRET and FIREBREAK_WEBHOOK_TOKEN set
let sample: any;

beforeAll(async () => {
  db = await createTestDatabase();
  sample = await fixture('grafana-firing.json');
  const dir = await playbooksDir({
    'memory.yaml': playbook('grafana-memory', 'grafana', ['alertname="High memory usage"']),
    'signed.yaml': playbook('grafana-signed', 'grafana', ['alertname="Signed"']),
    // Same labels from another source must not match a grafana-only trigger.
    'am-only.yaml': playbook('alertmanager-memory', 'alertmanager', ['alertname="High memory usage"']),
  });
  const env = { DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_WORKERS: '0' };
  [open, signed] = await Promise.all([
    startServer(env),
    startServer({ ...env, FIREBREAK_GRAFANA_SECRET: SECRET, FIREBREAK_WEBHOOK_TOKEN: TOKEN }),
  ]);
});

afterAll(async () => {
  await Promise.all([open?.stop(), signed?.stop()]);
  await db?.drop();
});

const post = (body: unknown, headers: Record<string, string> = {}, server = open) =>
  postRaw(`${server.url}/hooks/grafana`, typeof body === 'string' ? body : JSON.stringify(body), headers);

const hmac = (body: string, prefix = '') => createHmac('sha256', SECRET).update(prefix + body).digest('hex');

describe('POST /hooks/grafana', () => {
  it("normalises Grafana's documented payload: Grafana's fingerprint, UTC startsAt, one episode per alert", async () => {
    const res = await post(sample);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.episodes).toHaveLength(2);
    const rows = await episodes(db, 'grafana');
    expect(rows.map((r) => [r.fingerprint, r.starts_at.toISOString(), r.status])).toEqual([
      ['c6eadffa33fcdf37', '2021-10-12T07:51:03.157Z', 'firing'],
      ['bc97ff14869b13e3', '2021-10-12T07:56:03.157Z', 'firing'],
    ]);
    expect(rows[0]).toMatchObject({
      summary: 'This alert was triggered for zone us-1',
      severity: '',
      labels: { alertname: 'High memory usage', team: 'blue', zone: 'us-1' },
      generator_url: 'https://play.grafana.org/alerting/1afz29v7z/edit',
      ends_at: null,
    });
    // Only the grafana playbook matching the memory alert starts a run.
    expect(rows[0]!.runs.map((r) => [r.playbook, r.trigger])).toEqual([['grafana-memory', 'alert']]);
    expect(rows[1]!.runs).toEqual([]);
    expect(res.body.startedRuns).toEqual([rows[0]!.runs[0]!.id]);
    // Grafana's own fields are kept in the raw alert.
    const { rows: raw } = await db.pool.query("select alert from alert_episodes where fingerprint = 'c6eadffa33fcdf37'");
    expect(raw[0].alert.raw).toMatchObject({ values: { B: 44.23943737541908, C: 1 }, silenceURL: expect.stringContaining('silence/new') });
  });

  it('takes severity from the severity label', async () => {
    const body = structuredClone(sample);
    body.alerts = [{ ...body.alerts[1], fingerprint: 'aaaa000000000001', labels: { ...body.alerts[1].labels, severity: 'critical' } }];
    expect((await post(body)).status).toBe(202);
    expect((await episodes(db, 'grafana', 'aaaa000000000001'))[0]).toMatchObject({ severity: 'critical' });
  });

  it('repeats of a firing alert are one episode and one run, with the deliveries counted', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await post(sample);
      expect(res.status).toBe(202);
      expect(res.body.startedRuns).toEqual([]);
      expect(res.body.runs).toHaveLength(1);
    }
    const [memory] = await episodes(db, 'grafana', 'c6eadffa33fcdf37');
    expect(memory).toMatchObject({ deliveries: 4, status: 'firing' });
    expect(memory!.runs).toHaveLength(1);
  });

  it('the resolved notification closes the episode and reaches the run; a late repeat reopens nothing', async () => {
    const [before] = await episodes(db, 'grafana', 'c6eadffa33fcdf37');
    const resolved = structuredClone(sample);
    resolved.status = 'resolved';
    resolved.alerts = [{ ...sample.alerts[0], status: 'resolved', endsAt: '2021-10-12T10:02:03.157076+02:00' }];
    const res = await post(resolved);
    expect(res.status).toBe(202);
    const [after] = await episodes(db, 'grafana', 'c6eadffa33fcdf37');
    expect(after).toMatchObject({ id: before!.id, status: 'resolved' });
    expect(after!.ends_at!.toISOString()).toBe('2021-10-12T08:02:03.157Z');
    expect(await timelineKinds(db, after!.runs[0]!.id)).toContain('alert.resolved');
    const late = await post(sample);
    expect(late.status).toBe(202);
    expect(late.body.startedRuns).toEqual([]);
    const [still] = await episodes(db, 'grafana', 'c6eadffa33fcdf37');
    expect(still).toMatchObject({ status: 'resolved' });
    expect(still!.runs).toHaveLength(1);
  });

  it('answers 400 naming the field for every invalid shape, and stores nothing', async () => {
    const before = await notificationCount(db, 'grafana');
    const alert = (patch: Record<string, unknown>) => ({ ...sample, alerts: [{ ...sample.alerts[0], ...patch }] });
    const cases: Array<[unknown, string, RegExp?]> = [
      ['{"receiver": ', '(body)', /JSON/],
      ['', '(body)', /empty/],
      [[sample], '(body)'],
      [{ ...sample, version: '4' }, 'version', /"1"/],
      [{ ...sample, alerts: undefined }, 'alerts'],
      [{ ...sample, alerts: [] }, 'alerts', /at least one/],
      [{ ...sample, receiver: undefined }, 'receiver'],
      [{ ...sample, groupKey: 7 }, 'groupKey'],
      [{ ...sample, status: 'alerting' }, 'status'],
      [alert({ status: 'pending' }), 'alerts.0.status'],
      [alert({ labels: {} }), 'alerts.0.labels', /at least one label/],
      [alert({ labels: { alertname: 'x', zone: 1 } }), 'alerts.0.labels.zone', /string/],
      [alert({ annotations: { summary: ['x'] } }), 'alerts.0.annotations.summary'],
      [alert({ startsAt: 'yesterday' }), 'alerts.0.startsAt', /RFC 3339/],
      [alert({ startsAt: undefined }), 'alerts.0.startsAt'],
      [alert({ endsAt: '12:00' }), 'alerts.0.endsAt'],
      [alert({ fingerprint: 'not hex!' }), 'alerts.0.fingerprint', /fingerprint/],
      [alert({ values: { B: 'high' } }), 'alerts.0.values.B'],
    ];
    for (const [body, path, message] of cases) expectFieldError(await post(body), path, message);
    expect(await notificationCount(db, 'grafana')).toBe(before);
  });

  it('answers 413 over 1 MiB', async () => {
    const body = structuredClone(sample);
    body.message = 'x'.repeat(1024 * 1024);
    expect((await post(body)).status).toBe(413);
  });
});

describe('POST /hooks/grafana with FIREBREAK_GRAFANA_SECRET', () => {
  const auth = { authorization: `Bearer ${TOKEN}` };
  const body = () => {
    const b = structuredClone(sample);
    b.alerts = [{ ...sample.alerts[0], fingerprint: 'f00d000000000001', labels: { alertname: 'Signed', zone: 'us-1' } }];
    return JSON.stringify(b, null, 2); // Grafana's bytes, not ours: whitespace is part of what is signed
  };

  it('accepts a valid X-Grafana-Alerting-Signature over the exact body', async () => {
    const raw = body();
    const res = await post(raw, { ...auth, 'x-grafana-alerting-signature': hmac(raw) }, signed);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.startedRuns).toHaveLength(1);
    // Upper-case hex is the same signature.
    expect((await post(raw, { ...auth, 'x-grafana-alerting-signature': hmac(raw).toUpperCase() }, signed)).status).toBe(202);
  });

  it('accepts a timestamped signature (HMAC of "<timestamp>:<body>") and refuses a stale one', async () => {
    const raw = body();
    const now = String(Math.floor(Date.now() / 1000));
    const ok = await post(raw, { ...auth, 'x-grafana-alerting-timestamp': now, 'x-grafana-alerting-signature': hmac(raw, `${now}:`) }, signed);
    expect(ok.status).toBe(202);
    const old = String(Math.floor(Date.now() / 1000) - 3600);
    const stale = await post(raw, { ...auth, 'x-grafana-alerting-timestamp': old, 'x-grafana-alerting-signature': hmac(raw, `${old}:`) }, signed);
    expect(stale.status).toBe(401);
    expect(stale.body.error).toMatch(/too old/);
    // The body-only signature does not stand in for a timestamped one.
    expect((await post(raw, { ...auth, 'x-grafana-alerting-timestamp': now, 'x-grafana-alerting-signature': hmac(raw) }, signed)).status).toBe(401);
  });

  it('answers 401 for a missing, wrong or tampered signature, and for a missing webhook token', async () => {
    const before = await notificationCount(db, 'grafana');
    const raw = body();
    const missing = await post(raw, auth, signed);
    expect(missing.status).toBe(401);
    expect(missing.body.error).toMatch(/X-Grafana-Alerting-Signature/);
    expect((await post(raw, { ...auth, 'x-grafana-alerting-signature': 'deadbeef' }, signed)).status).toBe(401);
    expect((await post(raw, { ...auth, 'x-grafana-alerting-signature': createHmac('sha256', 'other').update(raw).digest('hex') }, signed)).status).toBe(401);
    const tampered = raw.replace('us-1', 'us-2');
    expect((await post(tampered, { ...auth, 'x-grafana-alerting-signature': hmac(raw) }, signed)).status).toBe(401);
    const noToken = await post(raw, { 'x-grafana-alerting-signature': hmac(raw) }, signed);
    expect(noToken.status).toBe(401);
    expect(noToken.body.details[0].path).toBe('Authorization');
    expect((await post(raw, { authorization: 'Bearer wrong', 'x-grafana-alerting-signature': hmac(raw) }, signed)).status).toBe(401);
    expect(await notificationCount(db, 'grafana')).toBe(before);
  });

  it('checks the signature before the body: an unsigned invalid body is 401, a signed invalid body 400', async () => {
    expect((await post('{not json', auth, signed)).status).toBe(401);
    expectFieldError(await post('{not json', { ...auth, 'x-grafana-alerting-signature': hmac('{not json') }, signed), '(body)');
  });
});
