/**
 * A resolved notification closes the episode, is written to its runs'
 * timelines, cancels their pending approvals, and the run follows on_resolved.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, startServer, type ServerProcess } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';

let db: TestDatabase;
let server: ServerProcess;
let target: Target;

const book = (name: string, onResolved: string, url: string) => `
name: ${name}
on_resolved: ${onResolved}
triggers: [{ matchers: ['alertname="${name}"'] }]
steps:
  - id: prepare
    action: http.request
    with: { method: POST, url: "${url}/${name}/prepare" }
    compensate: { action: http.request, with: { method: POST, url: "${url}/${name}/unprepare" } }
  - id: mitigate
    action: http.request
    impact: high
    with: { method: POST, url: "${url}/${name}/mitigate" }
  - id: wrap_up
    action: note
    with: { text: "done" }
`;

beforeAll(async () => {
  db = await createTestDatabase();
  target = await startTarget();
  const dir = await playbooksDir({ 'c.yaml': book('keepgoing', 'continue', target.url), 'a.yaml': book('stopnow', 'abort', target.url) });
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_HTTP_ALLOW: '127.0.0.1' });
});
afterAll(async () => {
  await server?.stop();
  await target?.close();
  await db?.drop();
});

const alert = (name: string, status: 'firing' | 'resolved') => ({
  fingerprint: `fp-${name}`,
  status,
  labels: { alertname: name, severity: 'warning' },
  startsAt: '2026-11-21T10:00:00Z',
});

async function waiting(name: string): Promise<string> {
  const res = await httpJson('POST', `${server.url}/hooks/generic`, alert(name, 'firing'));
  const runId = res.body.runs[0];
  await eventually(async () => (await httpJson('GET', `${server.url}/api/runs/${runId}`)).body.status === 'waiting');
  return runId;
}

async function settled(runId: string) {
  return eventually(async () => {
    const r = (await httpJson('GET', `${server.url}/api/runs/${runId}`)).body;
    return ['succeeded', 'failed', 'aborted', 'cancelled'].includes(r.status) ? r : undefined;
  });
}

describe('resolved alerts', () => {
  it('on_resolved: continue — the pending approval is cancelled, the step skipped, the run goes on', async () => {
    const runId = await waiting('keepgoing');
    const res = await httpJson('POST', `${server.url}/hooks/generic`, alert('keepgoing', 'resolved'));
    expect(res.status).toBe(202);
    expect(res.body.runs).toEqual([runId]);
    const run = await settled(runId);
    expect(run.status).toBe('succeeded');
    expect(run.steps.map((s: any) => s.status)).toEqual(['succeeded', 'skipped', 'succeeded']);
    expect(run.approvals[0].status).toBe('cancelled');
    const kinds = (await httpJson('GET', `${server.url}/api/runs/${runId}/timeline`)).body.events.map((e: any) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(['alert.resolved', 'approval.cancelled', 'step.skipped']));
    expect(target.count('/keepgoing/mitigate')).toBe(0);
    const episode = (await httpJson('GET', `${server.url}/api/alerts?status=resolved`)).body.items.find((a: any) => a.fingerprint === 'fp-keepgoing');
    expect(episode.status).toBe('resolved');
  });

  it('on_resolved: abort — the run is aborted and completed steps compensated', async () => {
    const runId = await waiting('stopnow');
    await httpJson('POST', `${server.url}/hooks/generic`, alert('stopnow', 'resolved'));
    const run = await settled(runId);
    expect(run.status).toBe('aborted');
    expect(run.steps.map((s: any) => s.status)).toEqual(['compensated', 'skipped', 'skipped']);
    expect(target.count('/stopnow/unprepare')).toBe(1);
    expect(target.count('/stopnow/mitigate')).toBe(0);
  });
});
