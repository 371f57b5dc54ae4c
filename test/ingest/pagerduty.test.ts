/**
 * POST /hooks/pagerduty with PagerDuty's documented v3 incident payloads:
 * signatures (key rotation), X-Webhook-Id dedup, one episode from
 * incident.triggered to incident.resolved, field-level 400s, the 5 s answer.
 */
import { createHmac } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/api/server.js';
import { loadConfig } from '../../src/config/index.js';
import { PAGERDUTY_DEADLINE_MS, type Ingestor } from '../../src/ingest/index.js';
import type { Pool } from '../../src/store/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { startServer, type ServerProcess } from '../helpers/server.js';
import { episodes, expectFieldError, fixture, notificationCount, playbook, postRaw, timelineKinds } from './helpers.js';

const SECRET = 'pd-signing-secret-ChPlLqSbR5yZ';
const OLD_SECRET = 'pd-signing-secret-being-rotated-out';
let db: TestDatabase;
let server: ServerProcess;
let unconfigured: ServerProcess; // FIREBREAK_PAGERDUTY_SECRET unset
let triggered: any;
let resolved: any;

beforeAll(async () => {
  db = await createTestDatabase();
  triggered = await fixture('pagerduty-incident-triggered.json');
  resolved = await fixture('pagerduty-incident-resolved.json');
  const dir = await playbooksDir({
    'api.yaml': playbook('pd-api-service', 'pagerduty', ['service="API Service"', 'urgency="high"']),
    'p1.yaml': playbook('pd-p1', 'pagerduty', ['priority="P1"', 'severity="critical"']),
  });
  const env = { DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_WORKERS: '0' };
  [server, unconfigured] = await Promise.all([startServer({ ...env, FIREBREAK_PAGERDUTY_SECRET: SECRET }), startServer(env)]);
});

afterAll(async () => {
  await Promise.all([server?.stop(), unconfigured?.stop()]);
  await db?.drop();
});

const sign = (raw: string, secret = SECRET) => `v1=${createHmac('sha256', secret).update(raw).digest('hex')}`;
let deliveries = 0;
const newDeliveryId = () => `7a9e4b1c-0d2f-4e6a-9b3c-${String(++deliveries).padStart(12, '0')}`;

/** Deliver like PagerDuty: compact JSON, signed, with a webhook id. */
function deliver(body: unknown, options: { id?: string; signature?: string; target?: ServerProcess; headers?: Record<string, string> } = {}) {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  return postRaw(`${(options.target ?? server).url}/hooks/pagerduty`, raw, {
    'user-agent': 'PagerDuty-Webhook/V3.0',
    'x-webhook-id': options.id ?? newDeliveryId(),
    'x-webhook-subscription': 'PY1OQ9Y',
    'x-pagerduty-signature': options.signature ?? sign(raw),
    ...options.headers,
  });
}

/** The documented incident, as another incident (id, created_at) and event. */
function incidentEvent(base: any, patch: { incident?: string; eventType?: string; createdAt?: string; occurredAt?: string; status?: string; eventId?: string; data?: any }) {
  const body = structuredClone(base);
  if (patch.incident) body.event.data.id = patch.incident;
  if (patch.eventType) body.event.event_type = patch.eventType;
  if (patch.createdAt) body.event.data.created_at = patch.createdAt;
  if (patch.occurredAt) body.event.occurred_at = patch.occurredAt;
  if (patch.status) body.event.data.status = patch.status;
  body.event.id = patch.eventId ?? `evt-${Math.random().toString(36).slice(2)}`;
  Object.assign(body.event.data, patch.data ?? {});
  return body;
}

describe('POST /hooks/pagerduty', () => {
  it('incident.triggered (documented payload) becomes an alert: incident id fingerprint, created_at start, urgency severity', async () => {
    const res = await deliver(triggered, { id: 'first-delivery-of-PGR0VU2' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const [episode] = await episodes(db, 'pagerduty', 'PGR0VU2');
    expect(episode!.starts_at.toISOString()).toBe('2020-04-09T15:16:27.000Z');
    expect(episode).toMatchObject({
      status: 'firing',
      severity: 'critical',
      summary: 'A little bump in the road',
      generator_url: 'https://acme.pagerduty.com/incidents/PGR0VU2',
      deliveries: 1,
      labels: {
        alertname: 'A little bump in the road',
        service: 'API Service',
        service_id: 'PF9KMXH',
        urgency: 'high',
        severity: 'critical',
        priority: 'P1',
        escalation_policy: 'Default',
        team: 'Engineering',
        incident_id: 'PGR0VU2',
        incident_number: '2',
        incident_key: 'd3640fbd41094207a1c11e58e46b1662',
      },
    });
    expect(episode!.runs.map((r) => r.playbook).sort()).toEqual(['pd-api-service', 'pd-p1']);
    expect(res.body.startedRuns).toHaveLength(2);
  });

  it('deduplicates on X-Webhook-Id: a redelivery stores and starts nothing', async () => {
    const before = await notificationCount(db, 'pagerduty');
    const again = await deliver(triggered, { id: 'first-delivery-of-PGR0VU2' });
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ duplicateDelivery: true, startedRuns: [] });
    expect(await notificationCount(db, 'pagerduty')).toBe(before);
    expect((await episodes(db, 'pagerduty', 'PGR0VU2'))[0]).toMatchObject({ deliveries: 1 });
  });

  it('other events about the open incident join its episode and start nothing new', async () => {
    const ack = incidentEvent(triggered, { eventType: 'incident.acknowledged', status: 'acknowledged', occurredAt: '2020-04-09T15:20:00Z' });
    const res = await deliver(ack);
    expect(res.status).toBe(202);
    expect(res.body.startedRuns).toEqual([]);
    expect(res.body.runs).toHaveLength(2);
    const all = await episodes(db, 'pagerduty', 'PGR0VU2');
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ deliveries: 2, status: 'firing' });
  });

  it('incident.resolved closes the episode incident.triggered opened and reaches its runs', async () => {
    const res = await deliver(resolved);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const all = await episodes(db, 'pagerduty', 'PGR0VU2');
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ status: 'resolved', severity: 'critical' });
    expect(all[0]!.ends_at!.toISOString()).toBe('2020-04-09T15:42:10.512Z');
    for (const run of all[0]!.runs) expect(await timelineKinds(db, run.id)).toContain('alert.resolved');
    // A late priority change on the resolved incident reopens nothing.
    const late = incidentEvent(resolved, { eventType: 'incident.priority_updated', status: 'resolved' });
    expect((await deliver(late)).body.startedRuns).toEqual([]);
    expect(await episodes(db, 'pagerduty', 'PGR0VU2')).toHaveLength(1);
  });

  it('a reopened incident is a new episode with its own run, closed by the next resolve', async () => {
    const reopened = incidentEvent(triggered, { eventType: 'incident.reopened', occurredAt: '2020-04-09T16:00:00Z' });
    const res = await deliver(reopened);
    expect(res.status).toBe(202);
    expect(res.body.startedRuns).toHaveLength(2);
    const again = incidentEvent(resolved, { occurredAt: '2020-04-09T16:30:00Z' });
    expect((await deliver(again)).status).toBe(202);
    const all = await episodes(db, 'pagerduty', 'PGR0VU2');
    expect(all.map((e) => [e.starts_at.toISOString(), e.status, e.runs.length])).toEqual([
      ['2020-04-09T15:16:27.000Z', 'resolved', 2],
      ['2020-04-09T16:00:00.000Z', 'resolved', 2],
    ]);
  });

  it('low urgency is severity warning; a non-matching incident is stored without runs', async () => {
    const low = incidentEvent(triggered, { incident: 'PLOWURG', data: { urgency: 'low', priority: null, service: { id: 'PX', summary: 'Batch', type: 'service_reference' } } });
    const res = await deliver(low);
    expect(res.status).toBe(202);
    expect((await episodes(db, 'pagerduty', 'PLOWURG'))[0]).toMatchObject({ severity: 'warning', runs: [] });
  });

  it('accepts events that are not about an incident state (pagey.ping, notes) without starting anything', async () => {
    const ping = await deliver(await fixture('pagerduty-pagey-ping.json'));
    expect(ping.status).toBe(202);
    expect(ping.body).toMatchObject({ episodes: [], startedRuns: [] });
    const note = {
      event: {
        id: '01CELJ7HUSJ1BTXAUYKL3I5OXO',
        event_type: 'incident.annotated',
        resource_type: 'incident',
        occurred_at: '2020-10-02T18:45:22.169Z',
        agent: null,
        client: null,
        data: {
          incident: { html_url: 'https://acme.pagerduty.com/incidents/PGR0VU2', id: 'PGR0VU2', self: 'https://api.pagerduty.com/incidents/PGR0VU2', summary: 'A little bump in the road', type: 'incident_reference' },
          id: 'P2LA89X',
          content: 'I sure am glad we are using PagerDuty!',
          trimmed: false,
          type: 'incident_note',
        },
      },
    };
    expect((await deliver(note)).status).toBe(202);
  });

  it('answers 400 naming the field for every invalid shape', async () => {
    const event = (patch: Record<string, unknown>) => ({ event: { ...triggered.event, ...patch } });
    const data = (patch: Record<string, unknown>) => event({ data: { ...triggered.event.data, ...patch } });
    const cases: Array<[unknown, string, RegExp?]> = [
      ['{"event": {', '(body)', /JSON/],
      [{}, 'event'],
      [{ event: 'incident.triggered' }, 'event'],
      [event({ id: undefined }), 'event.id'],
      [event({ event_type: 'Incident Triggered' }), 'event.event_type', /event type/],
      [event({ occurred_at: 'now' }), 'event.occurred_at', /RFC 3339/],
      [event({ data: undefined }), 'event.data'],
      [event({ data: { ...triggered.event.data, type: 'incident_note' } }), 'event.data.type', /incident/],
      [data({ id: '' }), 'event.data.id'],
      [data({ created_at: undefined }), 'event.data.created_at'],
      [data({ created_at: '2020-04-09' }), 'event.data.created_at', /RFC 3339/],
      [data({ status: 'open' }), 'event.data.status'],
      [data({ urgency: 'medium' }), 'event.data.urgency'],
      [data({ title: 42 }), 'event.data.title'],
      [data({ service: { summary: 'no id' } }), 'event.data.service.id'],
    ];
    for (const [body, path, message] of cases) expectFieldError(await deliver(body), path, message);
  });

  it('verifies X-PagerDuty-Signature: any one of several v1 signatures (key rotation) is enough', async () => {
    const raw = JSON.stringify(incidentEvent(triggered, { incident: 'PROTATE' }));
    const both = `${sign(raw, OLD_SECRET)},${sign(raw)}`;
    expect((await deliver(raw, { signature: both })).status).toBe(202);
    const spaced = `v1=${'0'.repeat(64)}, ${sign(raw)}`;
    expect((await deliver(raw, { signature: spaced })).status).toBe(202);
  });

  it('answers 401 for a missing, wrong, tampered or non-v1 signature, and stores nothing', async () => {
    const before = await notificationCount(db, 'pagerduty');
    const raw = JSON.stringify(incidentEvent(triggered, { incident: 'PBADSIG' }));
    const cases = [
      sign(raw, OLD_SECRET),
      `v1=${'ab'.repeat(32)}`,
      sign(raw).replace('v1=', 'v2='),
      sign(raw).slice(3), // no scheme
      `${sign(raw)}00`,
      '',
    ];
    for (const signature of cases) {
      const res = await deliver(raw, { signature });
      expect(res.status, signature).toBe(401);
      expect(res.body.error).toMatch(/X-PagerDuty-Signature/);
    }
    expect((await deliver(raw.replace('PBADSIG', 'PBADSIH'), { signature: sign(raw) })).status).toBe(401);
    expect(await notificationCount(db, 'pagerduty')).toBe(before);
  });

  it('answers 401 to everything while FIREBREAK_PAGERDUTY_SECRET is unset', async () => {
    const raw = JSON.stringify(triggered);
    const res = await deliver(raw, { target: unconfigured });
    expect(res.status).toBe(401);
    expect(res.body.error).toMatch(/FIREBREAK_PAGERDUTY_SECRET/);
    expect((await deliver(raw, { target: unconfigured, signature: sign(raw, '') })).status).toBe(401);
  });
});

describe('PagerDuty 5 s budget', () => {
  it('answers 503 (PagerDuty retries) before its 5 s timeout when storing hangs', async () => {
    const config = loadConfig({ FIREBREAK_PAGERDUTY_SECRET: SECRET });
    let calls = 0;
    const hanging = { ingest: () => (calls++, new Promise(() => {})) } as unknown as Ingestor;
    const app = await buildServer({ config, logger: pino({ level: 'silent' }), pool: {} as Pool, ingestor: hanging });
    try {
      const raw = JSON.stringify(triggered);
      const started = Date.now();
      const res = await app.inject({
        method: 'POST',
        url: '/hooks/pagerduty',
        // The server answers only for its own names (loopback with its port: 8080 by default).
        headers: { host: 'localhost:8080', 'content-type': 'application/json', 'x-webhook-id': 'slow-1', 'x-pagerduty-signature': sign(raw) },
        payload: raw,
      });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBeDefined();
      expect(res.json().error).toMatch(/not stored in time/);
      // The budget leaves PagerDuty's 5 s room for the network (not a timing assertion: the answer came at all).
      expect(PAGERDUTY_DEADLINE_MS).toBeLessThan(5_000);
      expect(Date.now() - started).toBeGreaterThanOrEqual(PAGERDUTY_DEADLINE_MS - 50);
      expect(calls).toBe(1);
    } finally {
      await app.close();
    }
  });
});
