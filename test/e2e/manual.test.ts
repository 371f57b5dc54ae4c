/**
 * Runs started by hand: POST /api/runs and `firebreak run-playbook` record
 * who started them, as they authenticated (run, API and timeline), with
 * parameters and retries deduplicated by idempotency key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';

const API_TOKEN = 'api-token-for-manual-runs';
let db: TestDatabase;
let server: ServerProcess;
const auth = { authorization: `Bearer ${API_TOKEN}` };
/** alice (SRE in policies/data.json): a personal token made by the operator. */
let alice: Record<string, string>;
let bobToken: string;

beforeAll(async () => {
  db = await createTestDatabase();
  const dir = await playbooksDir({
    'restart.yaml': `
name: restart-service
description: Restart a service by hand
steps:
  - id: plan
    action: note
    with: { text: "restart \${{ run.params.service }} for \${{ run.started_by }}" }
`,
  });
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_API_TOKEN: API_TOKEN });
  const made = await Promise.all(['alice', 'bob'].map((u) => runCli(['token', 'create', u], { DATABASE_URL: db.url })));
  alice = { authorization: `Bearer ${made[0]!.stdout.trim()}` };
  bobToken = made[1]!.stdout.trim();
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

async function runCreatedActor(runId: string): Promise<string> {
  const { rows } = await db.pool.query("select actor from timeline_events where run_id = $1 and kind = 'run.created'", [runId]);
  return rows[0].actor;
}

describe('manual runs', () => {
  it('POST /api/runs starts a manual run recorded as started by who authenticated', async () => {
    const res = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'restart-service', params: { service: 'checkout' } }, alice);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({ playbook: 'restart-service', trigger: 'manual', startedBy: 'token:alice', created: true, params: { service: 'checkout' } });
    const runId = res.body.id;
    const { rows } = await db.pool.query('select trigger, started_by, params from runs where id = $1', [runId]);
    expect(rows[0]).toEqual({ trigger: 'manual', started_by: 'token:alice', params: { service: 'checkout' } });
    expect(await runCreatedActor(runId)).toBe('token:alice');
    const done = await eventually(async () => {
      const run = (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, auth)).body;
      return run.status === 'succeeded' ? run : undefined;
    });
    expect(done.steps[0].output.text).toBe('restart checkout for token:alice');
  });

  it('the service token starts runs as `service`; a name in the body is not an identity; a credential is required', async () => {
    const res = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'restart-service' }, auth);
    expect(res.status).toBe(201);
    expect(res.body.startedBy).toBe('service');
    const named = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'restart-service', user: 'alice' }, auth);
    expect(named.status).toBe(400);
    expect(named.body.details[0].path).toBe('user');
    expect((await httpJson('POST', `${server.url}/api/runs`, { playbook: 'restart-service', user: 'mallory' })).status).toBe(401);
  });

  it('a retried request with the same idempotency key gets the same run', async () => {
    const body = { playbook: 'restart-service', user: 'alice', idempotencyKey: 'ticket-4711' };
    const first = await httpJson('POST', `${server.url}/api/runs`, body, alice);
    const again = await httpJson('POST', `${server.url}/api/runs`, body, alice);
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: first.body.id, created: false });
  });

  it('names the field or the playbook when the request is wrong', async () => {
    const missing = await httpJson('POST', `${server.url}/api/runs`, { params: {} }, auth);
    expect(missing.status).toBe(400);
    expect(missing.body.details.map((d: any) => d.path)).toContain('playbook');
    const unknown = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'no-such-playbook' }, auth);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatch(/no-such-playbook/);
  });

  it('`firebreak run-playbook` starts a run recorded as started by FIREBREAK_TOKEN’s identity', async () => {
    const env = { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: bobToken };
    const cli = await runCli(['run-playbook', 'restart-service', 'service=payments', 'reason=game day'], env);
    expect(cli.code, cli.stderr).toBe(0);
    const id = /started run ([0-9a-f-]{36})/.exec(cli.stdout)?.[1];
    expect(id, cli.stdout).toBeDefined();
    const run = (await httpJson('GET', `${server.url}/api/runs/${id}`, undefined, auth)).body;
    expect(run).toMatchObject({ trigger: 'manual', startedBy: 'token:bob', params: { service: 'payments', reason: 'game day' } });
    expect(await runCreatedActor(id!)).toBe('token:bob');

    // The service token when there is no personal one; --as is only for local mode.
    const asService = await runCli(['run-playbook', 'restart-service'], { FIREBREAK_URL: server.url, FIREBREAK_API_TOKEN: API_TOKEN, USER: 'carol' });
    expect(asService.code, asService.stderr).toBe(0);
    const id2 = /started run ([0-9a-f-]{36})/.exec(asService.stdout)![1];
    expect((await httpJson('GET', `${server.url}/api/runs/${id2}`, undefined, auth)).body.startedBy).toBe('service');
    const withAs = await runCli(['run-playbook', 'restart-service', '--as', 'carol'], env);
    expect(withAs.code).toBe(2);
    expect(withAs.stderr).toMatch(/--as is only for local mode/);

    const bad = await runCli(['run-playbook', 'restart-service', 'no-equals-sign'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/key=value/);
  });
});
