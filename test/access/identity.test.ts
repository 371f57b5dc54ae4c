/**
 * Every act by the identity that authenticated: personal tokens (created by
 * the operator or an SRE, shown once, stored hashed, revocable), the service
 * token that cannot answer approvals, a `user` in a body that is not an
 * identity (the reproduction: four-eyes and the two-approver rule
 * fell to two requests with two names), `firebreak/authorize` asked and
 * recorded for every act, and the CLI's FIREBREAK_TOKEN and `--as`.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertBody, writePlaybooks } from '../timeline/fixture.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { bundleWithData, copyPolicies, installBundle } from '../policy/helpers.js';

const API_TOKEN = `svc-${Math.random().toString(36).slice(2)}`;
const SERVICE = { authorization: `Bearer ${API_TOKEN}` };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

let db: TestDatabase;
/** The two-approver server has its own database: workers of both would otherwise drive each other's runs. */
let db2: TestDatabase;
let server: ServerProcess;
let twoApprovers: ServerProcess;
let dir: string;
let policies: { dir: string; cleanup: () => Promise<void> };
const tokens: Record<string, string> = {};
/** The same people's tokens on the two-approver server. */
const tokens2: Record<string, string> = {};

const PLAYBOOK = `
name: identity-flow
triggers:
  - matchers: ['alertname="IdentityFlow"']
steps:
  - id: rollback
    action: note
    impact: high
    with: { text: "rolling back" }
`;

/** `firebreak token create` as the operator (database access, no FIREBREAK_TOKEN): the token alone on stdout. */
async function createToken(user: string, ...flags: string[]): Promise<string> {
  return createTokenIn(db, user, ...flags);
}

async function createTokenIn(database: TestDatabase, user: string, ...flags: string[]): Promise<string> {
  const res = await runCli(['token', 'create', user, ...flags], { DATABASE_URL: database.url });
  expect(res.code, res.stderr).toBe(0);
  expect(res.stdout.trim()).not.toContain('\n');
  return res.stdout.trim();
}

beforeAll(async () => {
  [db, db2] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  dir = await writePlaybooks({ 'identity-flow.yaml': PLAYBOOK });
  // The two-approver rule (as in a change freeze) for every high-impact step: same wasm, different data.
  policies = await copyPolicies();
  await installBundle(
    policies.dir,
    await bundleWithData((d) => {
      d.approval.high_impact.min_approvals = 2;
      // alice has a second, differently named token: policy data says it is her.
      d.people.alice.push('token:alice.smith');
    }),
  );
  const common = { DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_API_TOKEN: API_TOKEN };
  [server, twoApprovers] = await Promise.all([startServer(common), startServer({ ...common, DATABASE_URL: db2.url, FIREBREAK_POLICIES: policies.dir, FIREBREAK_WORKERS: '2' })]);
  // alice and bob are SRE, carol on-call (policies/data.json); erin is in no group.
  for (const user of ['alice', 'bob', 'carol', 'erin']) tokens[user] = await createToken(user, '--ttl', '1d');
  for (const user of ['alice', 'bob']) tokens2[user] = await createTokenIn(db2, user);
});

afterAll(async () => {
  await Promise.all([server?.stop(), twoApprovers?.stop()]);
  await Promise.all([db?.drop(), db2?.drop()]);
  await policies?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function waitingRun(on: ServerProcess, start?: { token: string }): Promise<{ runId: string; approvalId: string }> {
  let runId: string;
  if (start) {
    const res = await httpJson('POST', `${on.url}/api/runs`, { playbook: 'identity-flow', params: {} }, bearer(start.token));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    runId = res.body.id;
  } else {
    const fired = await httpJson('POST', `${on.url}/hooks/generic`, alertBody({ alertname: 'IdentityFlow', service: `svc-${Math.random().toString(36).slice(2)}` }));
    runId = fired.body.runs[0];
  }
  const run = await eventually(async () => {
    const r = (await httpJson('GET', `${on.url}/api/runs/${runId}`, undefined, SERVICE)).body;
    return r.status === 'waiting' ? r : undefined;
  });
  return { runId, approvalId: run.approvals[0].id };
}

const answer = (on: ServerProcess, approvalId: string, token: string, body: Record<string, unknown> = {}) =>
  httpJson('POST', `${on.url}/api/approvals/${approvalId}`, { decision: 'approve', ...body }, bearer(token));

async function events(runId: string) {
  return (await db.pool.query('select kind, actor, data from timeline_events where chain_id = $1 order by seq', [runId])).rows;
}

describe('personal tokens', () => {
  it('are printed once and stored only as a hash', async () => {
    const token = tokens.alice!;
    expect(token).toMatch(/^fbt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    const { rows } = await db.pool.query("select id, user_name, token_hash, expires_at > now() + interval '23 hours' as ttl_ok from api_tokens where user_name = 'alice'");
    expect(rows).toHaveLength(1);
    expect(rows[0].token_hash).toBe(createHash('sha256').update(token).digest('hex'));
    expect(rows[0].ttl_ok).toBe(true);
    const dump = await db.pool.query("select string_agg(t::text, ' ') as all from (select * from api_tokens) t");
    expect(dump.rows[0].all).not.toContain(token.slice(-43));
    const timeline = await db.pool.query("select string_agg(data::text, ' ') as all from timeline_events");
    expect(timeline.rows[0].all ?? '').not.toContain(token.slice(-43));
  });

  it('authenticate as token:<user>; `firebreak token list` shows them without the secret', async () => {
    expect((await httpJson('GET', `${server.url}/api/whoami`, undefined, bearer(tokens.alice!))).body).toMatchObject({ id: 'token:alice', method: 'token', verified: true });
    const list = await runCli(['token', 'list'], { DATABASE_URL: db.url });
    expect(list.code).toBe(0);
    for (const user of ['alice', 'bob', 'carol', 'erin']) expect(list.stdout).toContain(user);
    expect(list.stdout).not.toContain(tokens.alice!.slice(-43));
    // A token whose secret is wrong, or that is not ours, is a 401.
    expect((await httpJson('GET', `${server.url}/api/runs`, undefined, bearer(`${tokens.alice!.slice(0, -1)}x`))).status).toBe(401);
  });

  it('carry groups given at creation (--group)', async () => {
    const frank = await createToken('frank', '--group', 'sre', '--group', 'oncall');
    expect((await httpJson('GET', `${server.url}/api/whoami`, undefined, bearer(frank))).body.groups).toEqual(['oncall', 'sre']);
  });

  it('are managed through the API by SRE (FIREBREAK_TOKEN), not by others or the service token', async () => {
    const byBob = await runCli(['token', 'create', 'gina', '--ttl', '2h', '--description', 'game day'], { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: tokens.bob });
    expect(byBob.code, byBob.stderr).toBe(0);
    const gina = byBob.stdout.trim();
    expect((await httpJson('GET', `${server.url}/api/whoami`, undefined, bearer(gina))).body.id).toBe('token:gina');
    const byCarol = await runCli(['token', 'create', 'mallory', '--group', 'sre'], { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: tokens.carol });
    expect(byCarol.code).toBe(1);
    expect(byCarol.stderr).toMatch(/token:carol may not token\.create/);
    expect((await httpJson('POST', `${server.url}/api/tokens`, { user: 'mallory', groups: ['sre'] }, SERVICE)).status).toBe(403);
    const decisions = (await db.pool.query("select kind, actor, data->>'action' as action from timeline_events where chain_id = 'access' and kind like 'access.%' and data->>'action' = 'token.create' order by seq")).rows;
    expect(decisions).toEqual(
      expect.arrayContaining([
        { kind: 'access.allowed', actor: 'token:bob', action: 'token.create' },
        { kind: 'access.denied', actor: 'token:carol', action: 'token.create' },
        { kind: 'access.denied', actor: 'service', action: 'token.create' },
      ]),
    );
  });

  it('revoked: the token stops working at once; its owner may revoke it, others may not', async () => {
    const henry = await createToken('henry');
    const id = henry.slice(4, 20);
    expect((await httpJson('GET', `${server.url}/api/runs`, undefined, bearer(henry))).status).toBe(200);
    const byErin = await runCli(['token', 'revoke', id], { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: tokens.erin });
    expect(byErin.code).toBe(1);
    expect((await httpJson('GET', `${server.url}/api/runs`, undefined, bearer(henry))).status).toBe(200);
    const own = await runCli(['token', 'revoke', id], { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: henry });
    expect(own.code, own.stderr).toBe(0);
    expect((await httpJson('GET', `${server.url}/api/runs`, undefined, bearer(henry))).status).toBe(401);
    const list = await runCli(['token', 'list', '--all', '--json'], { DATABASE_URL: db.url });
    expect(JSON.parse(list.stdout).items.find((t: { id: string }) => t.id === id)).toMatchObject({ state: 'revoked' });
  });

  it('expire by the database clock (--ttl), and may be revoked by the token itself as well as its id', async () => {
    const brief = await createToken('ivan', '--ttl', '2s');
    expect((await httpJson('GET', `${server.url}/api/runs`, undefined, bearer(brief))).status).toBe(200);
    await db.pool.query("update api_tokens set created_at = created_at - interval '1 hour', expires_at = now() - interval '1 second' where user_name = 'ivan'");
    expect((await httpJson('GET', `${server.url}/api/runs`, undefined, bearer(brief))).status).toBe(401);
    const judy = await createToken('judy');
    const revoked = await runCli(['token', 'revoke', judy], { DATABASE_URL: db.url });
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).not.toContain(judy.slice(-43));
    expect((await httpJson('GET', `${server.url}/api/runs`, undefined, bearer(judy))).status).toBe(401);
  });

  it('refuse bad requests with the field named', async () => {
    const res = await runCli(['token', 'create', 'bad name'], { DATABASE_URL: db.url });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/user/);
    expect((await httpJson('POST', `${server.url}/api/tokens`, { user: 'ivy', ttl: 'soon' }, bearer(tokens.bob!))).body.details[0].path).toBe('ttl');
  });
});

describe('the actor is who authenticated', () => {
  it('a different `user` in the body is a 400, and nothing is recorded for that name', async () => {
    const { runId, approvalId } = await waitingRun(server);
    const res = await answer(server, approvalId, tokens.carol!, { user: 'alice' });
    expect(res.status).toBe(400);
    expect(res.body.details[0].path).toBe('user');
    // The same name as the token's is fine.
    const ok = await answer(server, approvalId, tokens.alice!, { user: 'alice' });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ outcome: 'approved', actor: 'token:alice' });
    expect((await events(runId)).filter((e) => e.kind.startsWith('approval.') && e.kind !== 'approval.requested').map((e) => e.actor)).toEqual(['token:alice']);
  });

  it('the service token (FIREBREAK_API_TOKEN) cannot answer an approval: 403 with a clear message, in the timeline', async () => {
    const { runId, approvalId } = await waitingRun(server);
    const res = await httpJson('POST', `${server.url}/api/approvals/${approvalId}`, { decision: 'approve' }, SERVICE);
    expect(res.status).toBe(403);
    expect(res.body.error).toMatch(/service token \(FIREBREAK_API_TOKEN\) cannot answer approvals/);
    const denied = (await events(runId)).find((e) => e.kind === 'access.denied');
    expect(denied).toMatchObject({ actor: 'service', data: { action: 'approval.answer', allow: false } });
    // It may still start runs and read (automation).
    const started = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'identity-flow' }, SERVICE);
    expect(started.status).toBe(201);
    expect(started.body.startedBy).toBe('service');
    expect((await httpJson('POST', `${server.url}/api/runs`, { playbook: 'identity-flow', user: 'alice' }, SERVICE)).status).toBe(400);
  });

  it('four-eyes holds against a second request with another name (the issue’s reproduction)', async () => {
    const { runId, approvalId } = await waitingRun(server, { token: tokens.alice! });
    expect((await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, SERVICE)).body.startedBy).toBe('token:alice');
    const own = await answer(server, approvalId, tokens.alice!);
    expect(own.status).toBe(403);
    expect(own.body.reason).toMatch(/four-eyes: run .* was started by token:alice; token:alice cannot approve its steps/);
    expect((await answer(server, approvalId, tokens.alice!, { user: 'bob' })).status).toBe(400);
    const bob = await answer(server, approvalId, tokens.bob!);
    expect(bob.status).toBe(200);
    expect(bob.body.outcome).toBe('approved');
  });

  it('the two-approver rule needs two people, not two requests or two names', async () => {
    const { runId, approvalId } = await waitingRun(twoApprovers);
    const first = await answer(twoApprovers, approvalId, tokens2.alice!);
    expect(first.body).toMatchObject({ outcome: 'recorded', approvals: 1, minApprovals: 2 });
    expect((await answer(twoApprovers, approvalId, tokens2.alice!, { user: 'bob' })).status).toBe(400);
    expect((await answer(twoApprovers, approvalId, tokens2.alice!)).status).toBe(409);
    // Another identity of the same person (policy data ties token:alice.smith to alice) counts as alice.
    const aliceAgain = await createTokenIn(db2, 'alice.smith');
    const again = await answer(twoApprovers, approvalId, aliceAgain);
    expect(again.status).toBe(403);
    expect(again.body.reason).toBe('token:alice.smith already approved this step (as token:alice)');
    const second = await answer(twoApprovers, approvalId, tokens2.bob!);
    expect(second.body).toMatchObject({ outcome: 'approved', approvals: 2 });
    const run = await eventually(async () => {
      const r = (await httpJson('GET', `${twoApprovers.url}/api/runs/${runId}`, undefined, SERVICE)).body;
      return r.status === 'succeeded' ? r : undefined;
    });
    expect(run.approvals[0].decidedBy).toBe('token:bob');
  });
});

describe('firebreak/authorize for every act, every decision in the timeline', () => {
  it('run.start: on-call and SRE may, others may not (a dry run is anyone’s); an allowed start is on the run’s chain, a deny on the access chain', async () => {
    const byCarol = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'identity-flow' }, bearer(tokens.carol!));
    expect(byCarol.status).toBe(201);
    expect(byCarol.body.startedBy).toBe('token:carol');
    const byErin = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'identity-flow' }, bearer(tokens.erin!));
    expect(byErin.status).toBe(403);
    expect(byErin.body.reasons).toEqual(['no rule lets token:erin run.start']);
    const dry = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'identity-flow', dryRun: true }, bearer(tokens.erin!));
    expect(dry.status).toBe(201);
    expect(dry.body.startedBy).toBe('token:erin');
    // Allowed: written with the run's first events, in the transaction that created it.
    for (const [run, actor, dryRun] of [[byCarol.body.id, 'token:carol', false], [dry.body.id, 'token:erin', true]] as const) {
      const first = (await events(run)).slice(0, 2).map((e) => [e.kind, e.actor, e.data.action ?? null, e.data.resource?.dry_run ?? null]);
      expect(first).toEqual([
        ['run.created', actor, null, null],
        ['access.allowed', actor, 'run.start', dryRun],
      ]);
    }
    const { rows } = await db.pool.query("select kind, actor, data from timeline_events where chain_id = 'access' and data->>'action' = 'run.start' and actor = 'token:erin'");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ kind: 'access.denied', actor: 'token:erin' });
    expect(rows[0].data).toMatchObject({ entrypoint: 'firebreak/authorize', allow: false, reasons: ['no rule lets token:erin run.start'], user: { id: 'token:erin', method: 'token', verified: true } });
    expect(rows[0].data.bundleHash).toMatch(/^[0-9a-f]{64}$/);
    // A retried request that finds its run records the decision on that run.
    const again = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'identity-flow', idempotencyKey: 'retry-1' }, bearer(tokens.carol!));
    const retried = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'identity-flow', idempotencyKey: 'retry-1' }, bearer(tokens.carol!));
    expect(retried.body).toMatchObject({ id: again.body.id, created: false });
    expect((await events(again.body.id)).filter((e) => e.kind === 'access.allowed')).toHaveLength(2);
  });

  it('run.abort: the decision is on the run’s own chain; who started it may abort it', async () => {
    const { runId } = await waitingRun(server, { token: tokens.erin! }).catch(() => ({ runId: '' }));
    // erin may not start real runs; carol (on-call) does, erin may not abort it, carol may.
    expect(runId).toBe('');
    const started = await waitingRun(server, { token: tokens.carol! });
    const denied = await httpJson('POST', `${server.url}/api/runs/${started.runId}/abort`, { reason: 'no' }, bearer(tokens.erin!));
    expect(denied.status).toBe(403);
    const ok = await httpJson('POST', `${server.url}/api/runs/${started.runId}/abort`, { reason: 'mine' }, bearer(tokens.carol!));
    expect(ok.status).toBe(202);
    const kinds = (await events(started.runId)).filter((e) => e.data.action === 'run.abort' || e.kind === 'run.abort_requested').map((e) => [e.kind, e.actor, e.data.action ?? null]);
    expect(kinds).toEqual([
      ['access.denied', 'token:erin', 'run.abort'],
      ['access.allowed', 'token:carol', 'run.abort'],
      ['run.abort_requested', 'token:carol', null],
    ]);
  });

  it('audit verify accepts the access chain', async () => {
    const res = await runCli(['audit', 'verify'], { DATABASE_URL: db.url });
    expect(res.code, res.stdout + res.stderr).toBe(0);
  });
});

describe('the CLI acts as FIREBREAK_TOKEN', () => {
  it('approve, run-playbook, abort and whoami as token:<user>; --as is refused with a token and outside local mode', async () => {
    const { runId, approvalId } = await waitingRun(server);
    const env = { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: tokens.bob! };
    expect((await runCli(['whoami'], env)).stdout).toMatch(/^token:bob \(token; /);
    const withAs = await runCli(['approve', approvalId, '--as', 'alice'], env);
    expect(withAs.code).toBe(2);
    expect(withAs.stderr).toMatch(/--as is only for local mode/);
    const approved = await runCli(['approve', approvalId, '--comment', 'looks right'], env);
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout).toMatch(/approved: .* as token:bob/);
    await eventually(async () => (await httpJson('GET', `${server.url}/api/runs/${runId}`, undefined, SERVICE)).body.status === 'succeeded');
    // Without any credential, --as reaches a server that is not in local mode: refused.
    const noToken = await runCli(['run-playbook', 'identity-flow', '--as', 'alice'], { FIREBREAK_URL: server.url });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/HTTP 400.*--as .* only accepted in local mode/);
    const started = await runCli(['run-playbook', 'identity-flow', 'service=cli'], { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: tokens.carol! });
    expect(started.code, started.stderr).toBe(0);
    const id = /started run ([0-9a-f-]{36})/.exec(started.stdout)![1]!;
    expect((await httpJson('GET', `${server.url}/api/runs/${id}`, undefined, SERVICE)).body.startedBy).toBe('token:carol');
    const aborted = await runCli(['abort', id, '--reason', 'cli test'], { FIREBREAK_URL: server.url, FIREBREAK_TOKEN: tokens.carol! });
    expect(aborted.code, aborted.stderr).toBe(0);
  });
});
