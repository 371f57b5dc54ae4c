/**
 * Attacks on the automation safety rails through the contract (issue 16,
 * second pass): odd alert labels against a playbook whose `limits.key`,
 * `concurrency.key` and `channel` render them (one such alert used to fail
 * its whole notification with a 500), and odd text in the rails' acts
 * (pause, resume, silences, cancel) that Postgres cannot store: a 400 naming
 * the field, never a 500.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';

const AUDIT_KEY = 'c7'.repeat(32);
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

const PLAYBOOKS: Record<string, string> = {
  'keyed.yaml': `
name: keyed
triggers:
  - matchers: ['alertname="Keyed"']
limits:
  key: \${{ alert.labels.service }}
  max_runs: 1
  per: 1h
concurrency:
  key: \${{ alert.labels.service }}
  limit: 1
channel: "#inc-\${{ alert.labels.service }}"
steps:
  - id: note
    action: note
    with: { text: "keyed" }
`,
  'plain.yaml': `
name: plain
triggers:
  - matchers: ['alertname="Plain"']
steps:
  - id: note
    action: note
    with: { text: "plain" }
`,
};

let db: TestDatabase;
let dir: string;
let server: ServerProcess;
const tokens: Record<string, string> = {};

/** One Alertmanager notification (payload version 4) holding these alerts. */
function notification(alerts: Array<Record<string, string>>) {
  const startsAt = new Date().toISOString();
  return {
    version: '4',
    groupKey: `{}:{alertname="Keyed"}-${Math.random()}`,
    status: 'firing',
    receiver: 'firebreak',
    groupLabels: { alertname: 'Keyed' },
    commonLabels: { alertname: 'Keyed' },
    commonAnnotations: {},
    externalURL: 'http://alertmanager:9093',
    alerts: alerts.map((labels) => ({ status: 'firing', labels, annotations: {}, startsAt, endsAt: '0001-01-01T00:00:00Z', generatorURL: '' })),
  };
}

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await playbooksDir(PLAYBOOKS);
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_AUDIT_KEY: AUDIT_KEY, FIREBREAK_API_TOKEN: 'svc-attack-token' });
  // alice is SRE, carol on-call (policies/data.json).
  for (const user of ['alice', 'carol']) {
    const res = await runCli(['token', 'create', user], { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: AUDIT_KEY });
    expect(res.code, res.stderr).toBe(0);
    tokens[user] = res.stdout.trim();
  }
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('alert labels that the rails render into keys', () => {
  it('a NUL, a lone surrogate or a huge value in the key label is stored and counted, and the rest of its notification starts its runs', async () => {
    const huge = 'x'.repeat(8_000);
    const res = await httpJson(
      'POST',
      `${server.url}/hooks/alertmanager`,
      notification([
        { alertname: 'Keyed', service: 'checkout' },
        { alertname: 'Keyed', service: 'a\u0000b' },
        { alertname: 'Keyed', service: 'c\ud800d' },
        { alertname: 'Keyed', service: huge },
      ]),
    );
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.outcomes.map((o: { outcome: string }) => o.outcome)).toEqual(['started', 'started', 'started', 'started']);
    expect(res.body.startedRuns).toHaveLength(4);

    // Every run finishes; each key still has its own window: a second alert for the huge key is throttled.
    for (const id of res.body.startedRuns as string[]) {
      await eventually(async () => (await httpJson('GET', `${server.url}/api/runs/${id}`, undefined, bearer(tokens.alice!))).body.status === 'succeeded');
    }
    const again = await httpJson('POST', `${server.url}/hooks/alertmanager`, notification([{ alertname: 'Keyed', service: huge, instance: 'second' }]));
    expect(again.status, JSON.stringify(again.body)).toBe(202);
    expect(again.body.outcomes).toEqual([expect.objectContaining({ playbook: 'keyed', outcome: 'throttled' })]);
    const other = await httpJson('POST', `${server.url}/hooks/alertmanager`, notification([{ alertname: 'Keyed', service: `${huge}y` }]));
    expect(other.body.outcomes).toEqual([expect.objectContaining({ playbook: 'keyed', outcome: 'started' })]);

    const { rows } = await db.pool.query<{ limit_key: string }>(`select limit_key from runs where playbook = 'keyed' order by created_at`);
    expect(rows.map((r) => r.limit_key)).toContain('a\uFFFDb');
    expect(rows.map((r) => r.limit_key)).toContain('c\uFFFDd');
    expect(Math.max(...rows.map((r) => r.limit_key.length))).toBeLessThan(300);
  });

  it('a dry run with such an alert reports the rails instead of failing', async () => {
    const res = await httpJson(
      'POST',
      `${server.url}/api/runs`,
      { dryRun: true, playbook: 'keyed', source: 'generic', alert: { labels: { alertname: 'Keyed', service: 'e\u0000f' } } },
      bearer(tokens.alice!),
    );
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.items).toEqual([expect.objectContaining({ playbook: 'keyed', dryRun: true, created: true })]);
  });
});

describe('text the rails cannot store', () => {
  const json = { 'content-type': 'application/json' };

  it('a NUL in a pause or resume reason is a 400 naming the field; nothing is paused', async () => {
    const pause = await httpJson('POST', `${server.url}/api/pause`, { playbook: 'plain', reason: 'db\u0000down' }, { ...json, ...bearer(tokens.carol!) });
    expect(pause.status, JSON.stringify(pause.body)).toBe(400);
    expect(pause.body.details).toEqual([expect.objectContaining({ path: 'reason' })]);
    expect((await httpJson('GET', `${server.url}/api/automation`, undefined, bearer(tokens.carol!))).body.playbooks.find((p: { name: string }) => p.name === 'plain').paused).toBe(false);

    expect((await httpJson('POST', `${server.url}/api/pause`, { playbook: 'plain', reason: 'checking' }, bearer(tokens.carol!))).status).toBe(201);
    const resume = await httpJson('POST', `${server.url}/api/resume`, { playbook: 'plain', reason: 'fixed\u0000' }, bearer(tokens.alice!));
    expect(resume.status, JSON.stringify(resume.body)).toBe(400);
    expect(resume.body.details).toEqual([expect.objectContaining({ path: 'reason' })]);
    expect((await httpJson('POST', `${server.url}/api/resume`, { playbook: 'plain', reason: 'fixed' }, bearer(tokens.alice!))).body.resumed).toBe(true);
  });

  it('a NUL or lone surrogate in a silence reason or matcher is a 400 naming the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ matchers: 'service="checkout"', for: '1h', reason: 'maint\u0000enance' }, 'reason'],
      [{ matchers: [{ name: 'service', value: 'check\u0000out', isRegex: false }], for: '1h', reason: 'maintenance' }, 'matchers[0]'],
      [{ matchers: [{ name: 'service', value: 'check\ud800out', isRegex: false }], for: '1h', reason: 'maintenance' }, 'matchers[0]'],
      [{ matchers: ['service="checkout"', 'env="a\u0000"'], for: '1h', reason: 'maintenance' }, 'matchers[1]'],
    ];
    for (const [body, path] of cases) {
      const res = await httpJson('POST', `${server.url}/api/silences`, body, bearer(tokens.carol!));
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.details).toEqual([expect.objectContaining({ path })]);
    }
    expect((await httpJson('GET', `${server.url}/api/silences?state=all`, undefined, bearer(tokens.carol!))).body.items).toEqual([]);
  });

  it('a NUL in a cancel reason is a 400; the run is not cancelled', async () => {
    expect((await httpJson('POST', `${server.url}/api/pause`, { playbook: 'plain', reason: 'hold the run' }, bearer(tokens.carol!))).status).toBe(201);
    const started = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'plain' }, bearer(tokens.alice!));
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const id = started.body.id as string;
    const res = await httpJson('POST', `${server.url}/api/runs/${id}/cancel`, { reason: 'stop\u0000' }, bearer(tokens.alice!));
    expect(res.status, JSON.stringify(res.body)).toBe(400);
    expect(res.body.details).toEqual([expect.objectContaining({ path: 'reason' })]);
    expect((await httpJson('GET', `${server.url}/api/runs/${id}`, undefined, bearer(tokens.alice!))).body.status).toBe('queued');
    const ok = await httpJson('POST', `${server.url}/api/runs/${id}/cancel`, { reason: 'stop' }, bearer(tokens.alice!));
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect((await httpJson('POST', `${server.url}/api/resume`, { playbook: 'plain', reason: 'done' }, bearer(tokens.alice!))).status).toBe(200);
  });
});
