/**
 * The durable engine through the contract: alerts in over HTTP, runs read
 * over the API, steps calling a real local HTTP target that counts calls.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { genericAlert, playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';

let db: TestDatabase;
let server: ServerProcess;
let target: Target;
let dir: string;

const playbook = (name: string, alertname: string, steps: string, extra = '') => `
name: ${name}
triggers:
  - matchers: ['alertname="${alertname}"']
${extra}
steps:
${steps}
`;

beforeAll(async () => {
  db = await createTestDatabase();
  target = await startTarget();
  const T = target.url;
  dir = await playbooksDir({
    'happy.yaml': playbook('happy', 'Happy', `
  - id: context
    action: note
    with: { text: "service \${{ alert.labels.service }}" }
  - id: call
    action: http.request
    with: { method: POST, url: "${T}/happy/\${{ alert.labels.service }}", headers: { Authorization: "Bearer \${{ secrets.DEPLOY_TOKEN }}" }, body: { from: "\${{ steps.context.output.text }}" } }
  - id: skipped
    action: http.request
    when: steps.call.output.status == 500
    with: { url: "${T}/never" }
`),
    'flaky.yaml': playbook('flaky', 'Flaky', `
  - id: call
    action: http.request
    with: { method: POST, url: "${T}/flaky" }
    retry: { attempts: 4, backoff: 100ms }
`),
    'slow.yaml': playbook('slow', 'Slow', `
  - id: call
    action: http.request
    with: { url: "${T}/slow" }
    timeout: 300ms
    on_failure: continue
  - id: after
    action: note
    with: { text: "continued after a failed step" }
`),
    'comp.yaml': playbook('comp', 'Comp', `
  - id: first
    action: http.request
    with: { method: POST, url: "${T}/comp/first" }
    compensate: { action: http.request, with: { method: POST, url: "${T}/comp/undo-first" } }
  - id: second
    action: http.request
    with: { method: POST, url: "${T}/comp/second" }
    compensate: { action: http.request, with: { method: POST, url: "${T}/comp/undo-second" } }
  - id: breaks
    action: http.request
    with: { method: POST, url: "${T}/comp/breaks" }
  - id: never
    action: note
    with: { text: "not reached" }
`),
    'serial.yaml': playbook('serial', 'Serial', `
  - id: hold
    action: wait
    with: { duration: 800ms }
  - id: mark
    action: http.request
    with: { method: POST, url: "${T}/serial/\${{ alert.labels.instance }}" }
`, `concurrency:
  key: \${{ alert.labels.service }}
  limit: 1`),
  });
  server = await startServer({
    DATABASE_URL: db.url,
    FIREBREAK_PLAYBOOKS: dir,
    FIREBREAK_HTTP_ALLOW: '127.0.0.1',
    FIREBREAK_SECRET_DEPLOY_TOKEN: 'tok-9f8e7d6c5b4a',
    FIREBREAK_LEASE_MS: '2000',
  });
});

afterAll(async () => {
  await server?.stop();
  await target?.close();
  await db?.drop();
});

async function fire(labels: Record<string, string>): Promise<string> {
  const res = await httpJson('POST', `${server.url}/hooks/generic`, genericAlert(labels));
  expect(res.status).toBe(202);
  expect(res.body.runs).toHaveLength(1);
  return res.body.runs[0];
}

async function finished(runId: string, timeoutMs = 20_000): Promise<any> {
  return eventually(async () => {
    const r = await httpJson('GET', `${server.url}/api/runs/${runId}`);
    return ['succeeded', 'failed', 'aborted', 'cancelled'].includes(r.body.status) ? r.body : undefined;
  }, timeoutMs);
}

async function kinds(runId: string): Promise<string[]> {
  const t = await httpJson('GET', `${server.url}/api/runs/${runId}/timeline`);
  return t.body.events.map((e: any) => e.kind);
}

describe('engine', () => {
  it('runs a playbook end to end: CEL, Idempotency-Key, secrets redacted, when: skipping', async () => {
    const runId = await fire({ alertname: 'Happy', service: 'checkout' });
    const run = await finished(runId);
    expect(run).toMatchObject({ id: runId, playbook: 'happy', status: 'succeeded', trigger: 'alert' });
    expect(run.steps.map((s: any) => [s.id, s.action, s.status, s.attempts])).toEqual([
      ['context', 'note', 'succeeded', 1],
      ['call', 'http.request', 'succeeded', 1],
      ['skipped', 'http.request', 'skipped', 0],
    ]);
    const call = target.calls.find((c) => c.path === '/happy/checkout')!;
    expect(call.headers['idempotency-key']).toBe(`${runId}:call:1`);
    expect(call.headers.authorization).toBe('Bearer tok-9f8e7d6c5b4a');
    expect(JSON.parse(call.body)).toEqual({ from: 'service checkout' });
    expect(target.count('/never')).toBe(0);
    const events = await kinds(runId);
    expect(events).toEqual(['run.created', 'run.started', 'policy.decision', 'step.started', 'step.succeeded', 'policy.decision', 'step.started', 'step.succeeded', 'step.skipped', 'run.succeeded']);
    const { rows } = await db.pool.query('select data::text as d from timeline_events where run_id = $1', [runId]);
    expect(rows.map((r) => r.d).join('\n')).not.toContain('tok-9f8e7d6c5b4a');
    expect((await db.pool.query('select output::text as o from run_steps where run_id = $1', [runId])).rows.map((r) => r.o).join()).not.toContain('tok-9f8e7d6c5b4a');
  });

  it('retries with backoff under a new attempt key, until success', async () => {
    target.respond('/flaky', (_c, n) => ({ status: n <= 2 ? 503 : 200 }));
    const runId = await fire({ alertname: 'Flaky', service: 'a' });
    const run = await finished(runId);
    expect(run.status).toBe('succeeded');
    expect(run.steps[0]).toMatchObject({ id: 'call', status: 'succeeded', attempts: 3 });
    expect(target.calls.filter((c) => c.path === '/flaky').map((c) => c.headers['idempotency-key'])).toEqual([`${runId}:call:1`, `${runId}:call:2`, `${runId}:call:3`]);
    const events = await kinds(runId);
    expect(events.filter((k) => k === 'step.retrying')).toHaveLength(2);
  });

  it('a step past its timeout fails; on_failure: continue goes on', async () => {
    target.respond('/slow', { status: 200, delayMs: 3_000 });
    const runId = await fire({ alertname: 'Slow', service: 'a' });
    const run = await finished(runId);
    expect(run.status).toBe('succeeded');
    expect(run.steps.map((s: any) => s.status)).toEqual(['failed', 'succeeded']);
    expect(run.steps[0].error.message).toMatch(/timed out after 300 ms/);
  });

  it('a failed step aborts the run and compensates completed steps newest first', async () => {
    target.respond('/comp/breaks', { status: 400, body: { error: 'nope' } });
    const runId = await fire({ alertname: 'Comp', service: 'a' });
    const run = await finished(runId);
    expect(run.status).toBe('failed');
    expect(run.steps.map((s: any) => [s.id, s.status])).toEqual([
      ['first', 'compensated'],
      ['second', 'compensated'],
      ['breaks', 'failed'],
      ['never', 'skipped'],
    ]);
    const order = target.calls.filter((c) => c.path.startsWith('/comp/')).map((c) => c.path);
    expect(order).toEqual(['/comp/first', '/comp/second', '/comp/breaks', '/comp/undo-second', '/comp/undo-first']);
    expect(target.calls.find((c) => c.path === '/comp/undo-second')!.headers['idempotency-key']).toBe(`${runId}:second:compensate`);
  });

  it('concurrency.limit queues a second run for the same key until the first finishes', async () => {
    const first = await fire({ alertname: 'Serial', service: 'db', instance: 'one' });
    const second = await fire({ alertname: 'Serial', service: 'db', instance: 'two' });
    const other = await fire({ alertname: 'Serial', service: 'cache', instance: 'three' });
    await Promise.all([finished(first), finished(second), finished(other)]);
    const one = target.calls.find((c) => c.path === '/serial/one')!.at;
    const two = target.calls.find((c) => c.path === '/serial/two')!.at;
    const three = target.calls.find((c) => c.path === '/serial/three')!.at;
    expect(two).toBeGreaterThan(one); // waited for the slot
    expect(three).toBeLessThan(two); // another key is not held up
    expect(await kinds(second)).toContain('run.queued');
    const a = (await httpJson('GET', `${server.url}/api/runs/${first}`)).body;
    const b = (await httpJson('GET', `${server.url}/api/runs/${second}`)).body;
    expect(new Date(b.startedAt).getTime()).toBeGreaterThanOrEqual(new Date(a.finishedAt).getTime());
  });

  it('lists runs newest first with filters', async () => {
    const all = await httpJson('GET', `${server.url}/api/runs?limit=100`);
    expect(all.status).toBe(200);
    const times = all.body.items.map((r: any) => r.createdAt);
    expect([...times].sort().reverse()).toEqual(times);
    const failed = await httpJson('GET', `${server.url}/api/runs?status=failed`);
    expect(failed.body.items.every((r: any) => r.status === 'failed')).toBe(true);
    expect(failed.body.items.length).toBeGreaterThan(0);
    const byPlaybook = await httpJson('GET', `${server.url}/api/runs?playbook=happy`);
    expect(byPlaybook.body.items.map((r: any) => r.playbook)).toEqual(['happy']);
    expect((await httpJson('GET', `${server.url}/api/runs?status=bogus`)).status).toBe(400);
    expect((await httpJson('GET', `${server.url}/api/runs/not-a-uuid`)).status).toBe(404);
    const cli = await runCli(['runs', '--playbook', 'happy'], { FIREBREAK_URL: server.url });
    expect(cli.code).toBe(0);
    expect(cli.stdout).toContain('happy');
  });
});
