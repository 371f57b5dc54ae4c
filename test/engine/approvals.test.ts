/**
 * Approvals core through the API and the CLI, with the real policy bundle
 * (policies/data.json: alice and bob are in group sre; carol is on-call only).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { genericAlert, playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';

let db: TestDatabase;
let server: ServerProcess;
const targets: Target[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  // A target per high-impact scenario: the sample blast-radius rule counts calls per host.
  for (let i = 0; i < 4; i++) targets.push(await startTarget());
  const dir = await playbooksDir(
    Object.fromEntries(
      targets.map((t, i) => [
        `rollback-${i}.yaml`,
        `
name: rollback-${i}
triggers:
  - matchers: ['alertname="Rollback${i}"']
steps:
  - id: gather
    action: note
    with: { text: "before" }
  - id: rollback
    action: http.request
    impact: high
    with: { method: POST, url: "${t.url}/rollback" }
  - id: verify
    action: note
    with: { text: "after" }
`,
      ]),
    ),
  );
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_HTTP_ALLOW: '127.0.0.1' });
});

afterAll(async () => {
  await server?.stop();
  for (const t of targets) await t.close();
  await db?.drop();
});

async function waitingRun(i: number): Promise<{ runId: string; approvalId: string; run: any }> {
  const res = await httpJson('POST', `${server.url}/hooks/generic`, genericAlert({ alertname: `Rollback${i}`, service: 'checkout', severity: 'warning' }));
  const runId = res.body.runs[0];
  const run = await eventually(async () => {
    const r = (await httpJson('GET', `${server.url}/api/runs/${runId}`)).body;
    return r.status === 'waiting' ? r : undefined;
  });
  return { runId, approvalId: run.approvals[0].id, run };
}

const statusOf = async (runId: string) => (await httpJson('GET', `${server.url}/api/runs/${runId}`)).body;

describe('approvals', () => {
  it('a high-impact step waits for approval; an approver resumes it; a second answer is refused', async () => {
    const { runId, approvalId, run } = await waitingRun(0);
    expect(run.steps.map((s: any) => s.status)).toEqual(['succeeded', 'pending', 'pending']);
    expect(run.approvals[0]).toMatchObject({ stepId: 'rollback', status: 'pending', approvers: ['group:sre'], decidedBy: null });
    expect(targets[0]!.count('/rollback')).toBe(0);
    const pending = await httpJson('GET', `${server.url}/api/approvals`);
    expect(pending.body.items.map((a: any) => a.id)).toContain(approvalId);

    const ok = await httpJson('POST', `${server.url}/api/approvals/${approvalId}`, { decision: 'approve', user: 'alice' });
    expect(ok.status).toBe(200);
    expect(ok.body.outcome).toBe('approved');
    const done = await eventually(async () => {
      const r = await statusOf(runId);
      return r.status === 'succeeded' ? r : undefined;
    });
    expect(done.approvals[0]).toMatchObject({ status: 'approved', decidedBy: 'local:alice' });
    expect(targets[0]!.count('/rollback')).toBe(1);

    const again = await httpJson('POST', `${server.url}/api/approvals/${approvalId}`, { decision: 'approve', user: 'bob' });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatch(/already approved by local:alice/);
    const t = (await httpJson('GET', `${server.url}/api/runs/${runId}/timeline`)).body.events;
    const granted = t.find((e: any) => e.kind === 'approval.granted');
    expect(granted.actor).toBe('local:alice');
  });

  it('someone outside the approvers is refused, and the refusal is in the timeline', async () => {
    const { runId, approvalId } = await waitingRun(1);
    const res = await httpJson('POST', `${server.url}/api/approvals/${approvalId}`, { decision: 'approve', user: 'mallory' });
    expect(res.status).toBe(403);
    expect((await statusOf(runId)).status).toBe('waiting');
    const t = (await httpJson('GET', `${server.url}/api/runs/${runId}/timeline`)).body.events;
    expect(t.find((e: any) => e.kind === 'approval.refused')).toMatchObject({ actor: 'local:mallory' });
    // then a real approver through the CLI
    const cli = await runCli(['approve', approvalId, '--as', 'bob'], { FIREBREAK_URL: server.url });
    expect(cli.stdout + cli.stderr).toMatch(/approved/);
    expect(cli.code).toBe(0);
    await eventually(async () => (await statusOf(runId)).status === 'succeeded');
  });

  it('a rejection through the CLI aborts the run without calling the target', async () => {
    const { runId, approvalId } = await waitingRun(2);
    const cli = await runCli(['reject', approvalId, '--as', 'alice'], { FIREBREAK_URL: server.url });
    expect(cli.code).toBe(0);
    const run = await eventually(async () => {
      const r = await statusOf(runId);
      return r.status === 'aborted' ? r : undefined;
    });
    expect(run.approvals[0]).toMatchObject({ status: 'rejected', decidedBy: 'local:alice' });
    expect(run.steps.map((s: any) => s.status)).toEqual(['succeeded', 'skipped', 'skipped']);
    expect(targets[2]!.count('/rollback')).toBe(0);
    const again = await runCli(['approve', approvalId, '--as', 'bob'], { FIREBREAK_URL: server.url });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already rejected/);
  });

  it('two simultaneous answers record one decision', async () => {
    const { runId, approvalId } = await waitingRun(3);
    const [a, b] = await Promise.all([
      httpJson('POST', `${server.url}/api/approvals/${approvalId}`, { decision: 'approve', user: 'alice' }),
      httpJson('POST', `${server.url}/api/approvals/${approvalId}`, { decision: 'reject', user: 'bob' }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    const votes = await db.pool.query('select count(*)::int as n from approval_votes where approval_id = $1', [approvalId]);
    expect(votes.rows[0].n).toBe(1);
    const decided = (await db.pool.query("select count(*)::int as n from timeline_events where run_id = $1 and kind in ('approval.granted', 'approval.rejected')", [runId])).rows[0].n;
    expect(decided).toBe(1);
  });

  it('abort through the API compensates and stops a waiting run', async () => {
    const res = await httpJson('POST', `${server.url}/api/runs/00000000-0000-4000-8000-000000000000/abort`, {});
    expect(res.status).toBe(404);
    const bad = await httpJson('POST', `${server.url}/api/approvals/not-an-id`, { decision: 'maybe', user: '' });
    expect(bad.status).toBe(400);
    expect(bad.body.details.map((d: any) => d.path).sort()).toEqual(['decision', 'user']);
  });
});
