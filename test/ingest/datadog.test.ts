/**
 * POST /hooks/datadog with the documented template (docs/webhooks.md) filled
 * in the way Datadog fills it, with the example values of Datadog's variable
 * reference: fingerprint per monitor and scope, transitions, dedup across
 * re-notifications, Recovered closing the episode, field-level 400s, token.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATADOG_TEMPLATE } from '../../src/ingest/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { ROOT, startServer, type ServerProcess } from '../helpers/server.js';
import { episodes, expectFieldError, notificationCount, playbook, postRaw, timelineKinds } from './helpers.js';

const TOKEN = 'webhook-token-for-datadog-tests';
const auth = { authorization: `Bearer ${TOKEN}` };
let db: TestDatabase;
let server: ServerProcess;

/** The example values of https://docs.datadoghq.com/integrations/webhooks/#variables. */
const EXAMPLE: Record<string, string> = {
  ID: '1234567',
  DATE: '1406662672000',
  LAST_UPDATED: '1406662672000',
  EVENT_TYPE: 'metric_alert_monitor',
  EVENT_TITLE: '[Triggered] [Memory Alert]',
  TEXT_ONLY_MSG: 'Memory above 90% on my-host\nSee the runbook.',
  LINK: 'https://app.datadoghq.com/event/jump_to?event_id=123456',
  TAGS: 'monitor,name:myService,role:computing-node',
  HOSTNAME: 'my-host',
  PRIORITY: 'normal',
  AGGREG_KEY: '9bd4ac313a4d1e8fae2482df7b77628',
  ALERT_ID: '1234',
  ALERT_TITLE: '[Triggered on {host:ip-012345}] Host is Down',
  ALERT_TRANSITION: 'Triggered',
  ALERT_TYPE: 'error',
  ALERT_STATUS: 'system.load.1 over host:my-host was > 0 at least once during the last 1m',
  ALERT_PRIORITY: 'P1',
  ALERT_METRIC: 'system.load.1',
  ALERT_QUERY: 'avg(last_1m):avg:system.load.1{*} by {host} > 0',
  ALERT_SCOPE: 'availability-zone:us-east-1a, role:computing-node',
  ALERT_CYCLE_KEY: '7025364793870862823',
  ORG_ID: '11023',
  ORG_NAME: 'Datadog',
};

/** What Datadog does with the template: each $VARIABLE replaced by its value, JSON-escaped inside the quotes. */
function fill(vars: Record<string, string> = {}, template = DATADOG_TEMPLATE): string {
  const values = { ...EXAMPLE, ...vars };
  return template.replace(/\$([A-Z_]+)/g, (whole, name: string) => (name in values ? JSON.stringify(values[name]).slice(1, -1) : ''));
}

beforeAll(async () => {
  db = await createTestDatabase();
  const dir = await playbooksDir({
    'host-down.yaml': playbook('dd-host-down', 'datadog', ['monitor_id="1234"', 'severity="critical"']),
  });
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_WORKERS: '0', FIREBREAK_WEBHOOK_TOKEN: TOKEN });
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

const post = (body: unknown, headers: Record<string, string> = auth) =>
  postRaw(`${server.url}/hooks/datadog`, typeof body === 'string' ? body : JSON.stringify(body), headers);

describe('POST /hooks/datadog', () => {
  let fingerprint = '';

  it('normalises the documented template filled with Datadog example values', async () => {
    const res = await post(fill());
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.episodes).toHaveLength(1);
    fingerprint = res.body.episodes[0].fingerprint;
    const [episode] = await episodes(db, 'datadog', fingerprint);
    expect(episode!.starts_at.toISOString()).toBe('2014-07-29T19:37:52.000Z');
    expect(episode).toMatchObject({
      status: 'firing',
      severity: 'critical',
      summary: 'Host is Down',
      generator_url: 'https://app.datadoghq.com/event/jump_to?event_id=123456',
      labels: {
        alertname: 'Host is Down',
        monitor_id: '1234',
        priority: 'P1',
        hostname: 'my-host',
        availability_zone: 'us-east-1a',
        role: 'computing-node',
        name: 'myService',
        scope: 'availability-zone:us-east-1a,role:computing-node',
        severity: 'critical',
      },
      annotations: {
        summary: 'system.load.1 over host:my-host was > 0 at least once during the last 1m',
        description: 'Memory above 90% on my-host\nSee the runbook.',
        alert_transition: 'Triggered',
        alert_cycle_key: '7025364793870862823',
      },
    });
    expect(episode!.runs.map((r) => r.playbook)).toEqual(['dd-host-down']);
  });

  it('re-notifications of the open alert (Re-Triggered, Renotify, later $DATE) join its episode: one run', async () => {
    for (const [transition, date] of [['Re-Triggered', '1406663272000'], ['Renotify', '1406663872000']] as const) {
      const res = await post(fill({ ALERT_TRANSITION: transition, DATE: date, EVENT_TITLE: `[${transition}] [Memory Alert]` }));
      expect(res.status).toBe(202);
      expect(res.body.startedRuns).toEqual([]);
      expect(res.body.runs).toHaveLength(1);
    }
    // The scope in another order and spacing is the same group.
    expect((await post(fill({ ALERT_SCOPE: 'role:computing-node,availability-zone:us-east-1a', DATE: '1406664000000' }))).body.startedRuns).toEqual([]);
    const all = await episodes(db, 'datadog', fingerprint);
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ deliveries: 4 });
  });

  it('another group of the same monitor is another alert; a Warn is severity warning and matches no critical playbook', async () => {
    const res = await post(fill({ ALERT_SCOPE: 'availability-zone:us-east-1b, role:computing-node', ALERT_TRANSITION: 'Warn', ALERT_TYPE: 'warning' }));
    expect(res.status).toBe(202);
    const other = res.body.episodes[0].fingerprint;
    expect(other).not.toBe(fingerprint);
    expect((await episodes(db, 'datadog', other))[0]).toMatchObject({ severity: 'warning', runs: [] });
    // Escalating to Triggered while open: the same episode, now critical, starts the run.
    const escalated = await post(fill({ ALERT_SCOPE: 'availability-zone:us-east-1b, role:computing-node', DATE: '1406662999000' }));
    expect(escalated.body.startedRuns).toHaveLength(1);
    const all = await episodes(db, 'datadog', other);
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ severity: 'critical', deliveries: 2 });
  });

  it('Recovered closes the episode (severity kept) and reaches the run; the next Triggered is a new episode', async () => {
    const res = await post(fill({ ALERT_TRANSITION: 'Recovered', ALERT_TYPE: 'success', DATE: '1406665000000', EVENT_TITLE: '[Recovered] [Memory Alert]' }));
    expect(res.status).toBe(202);
    const [closed] = await episodes(db, 'datadog', fingerprint);
    expect(closed).toMatchObject({ status: 'resolved', severity: 'critical' });
    expect(closed!.ends_at!.toISOString()).toBe('2014-07-29T20:16:40.000Z');
    expect(await timelineKinds(db, closed!.runs[0]!.id)).toContain('alert.resolved');
    // A retried delivery of the first Triggered (same $DATE) lands on the closed episode again.
    expect((await post(fill())).body.startedRuns).toEqual([]);
    const next = await post(fill({ DATE: '1406670000000' }));
    expect(next.body.startedRuns).toHaveLength(1);
    expect((await episodes(db, 'datadog', fingerprint)).map((e) => [e.starts_at.toISOString(), e.status])).toEqual([
      ['2014-07-29T19:37:52.000Z', 'resolved'],
      ['2014-07-29T21:40:00.000Z', 'firing'],
    ]);
  });

  it('answers 400 naming the field for every invalid shape, and stores nothing', async () => {
    const before = await notificationCount(db, 'datadog');
    const base = JSON.parse(fill());
    const cases: Array<[unknown, string, RegExp?]> = [
      [fill().slice(0, -3), '(body)', /JSON/],
      [[base], '(body)'],
      [{ ...base, alert_id: undefined }, 'alert_id'],
      [{ ...base, alert_id: '' }, 'alert_id', /monitor id/],
      [{ ...base, alert_id: 'abc' }, 'alert_id', /monitor id/],
      [{ ...base, alert_transition: 'Exploded' }, 'alert_transition', /Triggered/],
      [{ ...base, alert_transition: undefined }, 'alert_transition'],
      [{ ...base, date: 'yesterday' }, 'date', /epoch/],
      [{ ...base, date: '' }, 'date'],
      [{ ...base, tags: 5 }, 'tags'],
      [{ ...base, alert_scope: ['host:a'] }, 'alert_scope'],
      [{ ...base, labels: { team: 1 } }, 'labels.team'],
      [{ ...base, org: 'Datadog' }, 'org'],
    ];
    for (const [body, path, message] of cases) expectFieldError(await post(body), path, message);
    expect(await notificationCount(db, 'datadog')).toBe(before);
  });

  it('accepts extra static labels from the template, and numbers where Datadog leaves variables unquoted', async () => {
    const body = { ...JSON.parse(fill({ ALERT_ID: '98765', ALERT_SCOPE: 'host:db-1' })), labels: { team: 'storage' }, alert_id: 98765, date: 1406662672000 };
    const res = await post(body);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect((await episodes(db, 'datadog', res.body.episodes[0].fingerprint))[0]!.labels).toMatchObject({ team: 'storage', monitor_id: '98765', host: 'db-1' });
  });

  it('answers 401 without the webhook token (Datadog sends it as a custom header)', async () => {
    expect((await post(fill(), {})).status).toBe(401);
    expect((await post(fill(), { authorization: 'Bearer nope' })).status).toBe(401);
  });

  it('the template in docs/webhooks.md is the one the code expects', async () => {
    const doc = await readFile(join(ROOT, 'docs', 'webhooks.md'), 'utf8');
    expect(doc).toContain(DATADOG_TEMPLATE);
  });
});
