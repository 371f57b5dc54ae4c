/** GET /metrics speaks the Prometheus text format and counts what the server did. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { genericAlert, playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, startServer, type ServerProcess } from '../helpers/server.js';

let db: TestDatabase;
let server: ServerProcess;

beforeAll(async () => {
  db = await createTestDatabase();
  const dir = await playbooksDir({
    'm.yaml': `
name: measured
triggers: [{ matchers: ['alertname="Measured"'] }]
steps:
  - { id: look, action: note, with: { text: "hello" } }
`,
  });
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir });
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{([^}]*)\})? ([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries((m[3] ?? '').split(',').filter(Boolean).map((kv) => kv.split('=').map((x) => x.replace(/"/g, ''))));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4]);
  }
  return undefined;
}

describe('/metrics', () => {
  it('counts alerts, episodes, runs by state, step durations and policy decisions', async () => {
    const res = await httpJson('POST', `${server.url}/hooks/generic`, genericAlert({ alertname: 'Measured' }));
    await httpJson('POST', `${server.url}/hooks/generic`, genericAlert({ alertname: 'Other' }, { status: 'resolved' }));
    const runId = res.body.runs[0];
    await eventually(async () => (await httpJson('GET', `${server.url}/api/runs/${runId}`)).body.status === 'succeeded');
    const metrics = await httpJson('GET', `${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(String(metrics.headers['content-type'])).toMatch(/text\/plain/);
    const text = metrics.body as string;
    expect(sample(text, 'firebreak_alerts_received_total', { source: 'generic', status: 'firing' })).toBe(1);
    expect(sample(text, 'firebreak_alerts_received_total', { source: 'generic', status: 'resolved' })).toBe(1);
    expect(sample(text, 'firebreak_alert_episodes_total', { source: 'generic' })).toBe(2);
    expect(sample(text, 'firebreak_runs', { status: 'succeeded' })).toBe(1);
    expect(sample(text, 'firebreak_runs', { status: 'running' })).toBe(0);
    expect(sample(text, 'firebreak_step_duration_seconds_count', { action: 'note', result: 'succeeded' })).toBe(1);
    expect(sample(text, 'firebreak_policy_decisions_total', { result: 'allow' })).toBe(1);
    expect(sample(text, 'firebreak_queue_lag_seconds')).toBe(0);
    expect(text).toContain('firebreak_lease_takeovers_total');
    expect(text).toContain('firebreak_approval_wait_seconds');
    expect(text).toContain('firebreak_slack_outbox_depth');
  });
});
