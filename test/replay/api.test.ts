/**
 * POST /api/runs for dry runs: alerts (normalised, raw, a stored episode's),
 * stubs, --no-gather, and the errors a client gets for a bad request.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { eventually, httpJson, ROOT, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { FINISHED, samplePlaybooks, settled, startWorld, timeline, type World } from './helpers.js';

let db: TestDatabase;
let server: ServerProcess;
let world: World;

const stubDemo = (base: string) => `
name: stub-demo
triggers:
  - matchers: ['alertname="StubDemo"']
steps:
  - id: call
    action: http.request
    with: { method: POST, url: "${base}/deploy/job", body: { service: "\${{ alert.labels.service }}" } }
  - id: follow
    action: http.request
    when: steps.call.output.status == 202
    with: { method: POST, url: "${base}/deploy/follow/\${{ steps.call.output.body.job }}" }
`;

const normalised = (labels: Record<string, string>, extra: Record<string, unknown> = {}) => ({
  source: 'generic',
  fingerprint: `fp-${labels.alertname}-${labels.service ?? 'x'}`,
  status: 'firing',
  labels,
  annotations: {},
  startsAt: '2024-06-01T12:00:00Z',
  summary: `${labels.alertname} on ${labels.service ?? 'x'}`,
  severity: 'critical',
  ...extra,
});

beforeAll(async () => {
  db = await createTestDatabase();
  world = await startWorld();
  const { dir } = await samplePlaybooks(world, { 'stub-demo.yaml': stubDemo(world.a) });
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_HTTP_ALLOW: world.hosts.join(','), FIREBREAK_SECRET_DEPLOY_TOKEN: 'tok-a1b2c3d4e5' });
});

afterAll(async () => {
  await server?.stop();
  await world?.close();
  await db?.drop();
});

const post = (body: unknown) => httpJson('POST', `${server.url}/api/runs`, body);

async function finished(runId: string): Promise<any> {
  return eventually(async () => {
    const r = await httpJson('GET', `${server.url}/api/runs/${runId}`);
    return FINISHED.includes(r.body.status) ? r.body : undefined;
  }, 30_000);
}

describe('POST /api/runs with dryRun', () => {
  it('answers the calls it does not make with the stub, so later steps see it', async () => {
    const res = await post({ dryRun: true, alert: normalised({ alertname: 'StubDemo', service: 'api' }), stub: { status: 202, body: { queued: true, job: 'j-7' } }, user: 'erin' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.items).toHaveLength(1);
    expect(res.body.alerts[0]).toMatchObject({ source: 'generic', fingerprint: 'fp-StubDemo-api', runs: [{ playbook: 'stub-demo', matched: true }] });
    const run = await finished(res.body.items[0].id);
    expect(run.status).toBe('succeeded');
    expect(run.dryRunOptions).toMatchObject({ stub: { status: 202, body: { queued: true, job: 'j-7' }, headers: {} }, requestedBy: 'local:erin', alertSource: 'generic' });
    const t = await timeline(server.url, run.id);
    const calls = t.events.filter((e: any) => e.kind === 'step.would_call').map((e: any) => [e.data.stepId, e.data.request.method, e.data.request.url, e.data.response.status]);
    expect(calls).toEqual([
      ['call', 'POST', `${world.a}/deploy/job`, 202],
      ['follow', 'POST', `${world.a}/deploy/follow/j-7`, 202],
    ]);
    expect(world.calls.filter((c) => c.path.startsWith('/deploy/job') || c.path.startsWith('/deploy/follow'))).toHaveLength(0);
    // The run.created event says who asked and how it simulates.
    expect(t.events[0].actor).toBe('local:erin');
    expect(t.events[0].data.dryRunOptions.stub.status).toBe(202);
  });

  it('fails a step whose stub status it does not expect, as the real call would', async () => {
    const res = await post({ dryRun: true, playbook: 'stub-demo', alert: normalised({ alertname: 'StubDemo', service: 'db' }), stub: { status: 503, body: { error: 'busy' } } });
    expect(res.status).toBe(201);
    const run = await finished(res.body.items[0].id);
    expect(run.status).toBe('failed');
    expect(run.steps.map((s: any) => [s.id, s.status])).toEqual([['call', 'failed'], ['follow', 'skipped']]);
    expect(run.steps[0].error.message).toContain('answered 503 (dry-run stub)');
  });

  it('with noGather, records gather steps as would-call too and calls nothing at all', async () => {
    const before = world.calls.length;
    const alert = JSON.parse(await readFile(join(ROOT, 'examples', 'alerts', 'high-error-rate.json'), 'utf8'));
    const res = await post({ dryRun: true, alert, source: 'alertmanager', noGather: true, stubs: { error_rate: { value: 0.2 } } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const runId = res.body.items[0].id;
    const waiting = await settled(server.url, runId);
    expect(waiting.status).toBe('waiting');
    const approval = waiting.approvals.find((a: any) => a.status === 'pending');
    expect(approval.stepId).toBe('rollback');
    // Approvals of a dry run are real: an SRE answers, and the dry run goes on.
    const answer = await httpJson('POST', `${server.url}/api/approvals/${approval.id}`, { decision: 'approve', user: 'bob', via: 'cli' });
    expect(answer.status).toBe(200);
    const run = await finished(runId);
    expect(run.status).toBe('succeeded');
    expect(world.calls.length, 'a --no-gather dry run made a request').toBe(before);
    const t = await timeline(server.url, runId);
    const would = Object.fromEntries(t.events.filter((e: any) => e.kind === 'step.would_call').map((e: any) => [e.data.stepId, e.data]));
    expect(Object.keys(would).sort()).toEqual(['error_rate', 'last_deploy', 'report', 'rollback', 'tell_channel', 'verify']);
    expect(would.error_rate.reason).toBe('gather');
    expect(would.error_rate.request.method).toBe('GET');
    expect(new URL(would.error_rate.request.url).searchParams.get('query')).toContain('http_requests_total{service="checkout",code=~"5.."}');
    expect(would.last_deploy).toMatchObject({ reason: 'gather', request: { method: 'GET', headers: { Authorization: 'Bearer [redacted]' } } });
    expect(would.rollback.reason).toBe('side_effect');
    // The per-step stub drove the `when:` and the rendered body.
    expect(JSON.parse(would.rollback.request.body).reason).toMatch(/5xx ratio 0\.2$/);
    expect(run.steps.find((s: any) => s.id === 'error_rate').output).toMatchObject({ value: 0.2, dryRun: true });
  });

  it('replays a stored episode, which keeps its own runs', async () => {
    const fired = await httpJson('POST', `${server.url}/hooks/generic`, { labels: { alertname: 'StubDemo', service: 'web' }, startsAt: '2024-06-02T08:00:00Z' });
    expect(fired.status).toBe(202);
    const realRun = fired.body.runs[0];
    await finished(realRun);
    const episode = fired.body.episodes[0];
    const res = await runCli(['replay', String(episode.id), '--as', 'frank', '--stub', '{"status":202,"body":{"job":"j-9"}}'], { FIREBREAK_URL: server.url });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(`[DRY RUN] stub-demo`);
    expect(res.stdout).toContain(`would call: POST ${world.a}/deploy/follow/j-9`);
    const dryId = /run ([0-9a-f-]{36})/.exec(res.stdout)![1]!;
    const dry = (await httpJson('GET', `${server.url}/api/runs/${dryId}`)).body;
    expect(dry).toMatchObject({ dryRun: true, trigger: 'alert', episodeId: null, dryRunOptions: { episodeId: episode.id, requestedBy: 'local:frank' } });
    const alerts = await httpJson('GET', `${server.url}/api/alerts`);
    expect(alerts.body.items.find((e: any) => e.id === episode.id).runs).toEqual([realRun]);
  });

  it('names the playbook it was asked for even when the alert would not start it, and says so', async () => {
    const res = await post({ dryRun: true, playbook: 'stub-demo', alert: normalised({ alertname: 'Other' }) });
    expect(res.status).toBe(201);
    expect(res.body.items[0].matched).toBe(false);
    expect(res.body.alerts[0].note).toContain('does not match');
    const none = await post({ dryRun: true, alert: normalised({ alertname: 'NothingMatches' }) });
    expect(none.status).toBe(200);
    expect(none.body).toMatchObject({ items: [], alerts: [{ runs: [], note: 'no playbook matches this alert' }] });
    const resolved = await post({ dryRun: true, alert: normalised({ alertname: 'StubDemo' }, { status: 'resolved' }) });
    expect(resolved.body).toMatchObject({ items: [], alerts: [{ status: 'resolved', note: 'resolved: a resolved alert starts no run' }] });
  });

  it('is idempotent on idempotencyKey, and a plain named dry run answers with the run', async () => {
    const body = { dryRun: true, alert: normalised({ alertname: 'StubDemo', service: 'idem' }), idempotencyKey: 'replay-1' };
    const first = await post(body);
    const second = await post(body);
    expect(first.status).toBe(201);
    expect(second.status).toBe(200);
    expect(second.body.items.map((r: any) => r.id)).toEqual(first.body.items.map((r: any) => r.id));
    const plain = await post({ playbook: 'stub-demo', dryRun: true, user: 'gina' });
    expect(plain.status).toBe(201);
    expect(plain.body).toMatchObject({ playbook: 'stub-demo', dryRun: true, trigger: 'manual', startedBy: 'local:gina', dryRunOptions: { requestedBy: 'local:gina', playbooksFrom: 'server' } });
  });

  it('refuses bad requests with the field named', async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ playbook: 'stub-demo', alert: normalised({ alertname: 'StubDemo' }) }, 400, 'dryRun'],
      [{ playbook: 'stub-demo', noGather: true }, 400, 'dryRun'],
      [{ dryRun: true, alert: { labels: { alertname: 'X' } } }, 400, 'source'],
      [{ dryRun: true, alert: { version: '4', alerts: 'nope' }, source: 'alertmanager' }, 400, 'alert.'],
      [{ dryRun: true, alert: normalised({ alertname: 'StubDemo' }), episodeId: 1 }, 400, 'episodeId'],
      [{ dryRun: true, episodeId: 999999 }, 404, ''],
      [{ dryRun: true, playbook: 'no-such-playbook' }, 404, ''],
      [{ dryRun: true }, 400, 'playbook'],
      [{ dryRun: true, playbook: 'stub-demo', stub: { status: 99 } }, 400, 'stub.status'],
      [{ dryRun: true, alert: normalised({ alertname: 'StubDemo' }), playbooks: [{ file: 'x.yaml', source: 'name: [' }] }, 400, 'playbooks (x.yaml'],
    ];
    for (const [body, status, path] of cases) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      if (path) expect(res.body.details.map((d: any) => d.path).join(' '), JSON.stringify(res.body)).toContain(path);
    }
  });
});
