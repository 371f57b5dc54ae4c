/**
 * Two replicas against one database and one (fake) Slack: a double click
 * yields one decision, and 429/500 storms delay messages without losing,
 * reordering or duplicating any.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, type ServerProcess } from '../helpers/server.js';
import { startFakeSlack, type FakeMessage, type FakeSlack } from './fake-slack.js';
import { SRE1, SRE2, approvalPlaybook, click, fireAlert, pendingApproval, rootMessage, startSlackServer, testPolicies, timeline, waitForRun } from './helpers.js';

let db: TestDatabase;
let policies: string;
let slack: FakeSlack;
let a: ServerProcess;
let b: ServerProcess;

beforeAll(async () => {
  [db, slack] = await Promise.all([createTestDatabase(), startFakeSlack()]);
  const playbooks = await playbooksDir({ 'flow.yaml': approvalPlaybook('slack-replicas', 'SlackReplicas') });
  policies = await testPolicies();
  const env = { databaseUrl: db.url, playbooks, policies, slack };
  // Start one first so the other does not race it through the migrations for nothing.
  a = await startSlackServer(env);
  b = await startSlackServer(env);
});

afterAll(async () => {
  if (process.env.SLACK_TEST_LOGS) console.log(a?.logs(), b?.logs());
  await Promise.all([a?.stop(), b?.stop()]);
  await slack?.close();
  await db?.drop();
  if (policies) await rm(policies, { recursive: true, force: true });
});

/** What a run's thread must show, in this order. */
function expectThreadInOrder(thread: FakeMessage[], approvalMessage: FakeMessage) {
  const order = [
    thread.findIndex((m) => m.text.includes('`gather`')),
    thread.indexOf(approvalMessage),
    thread.findIndex((m) => m.text.includes('`rollback`')),
    thread.findIndex((m) => m.text.includes('`verify`')),
    thread.findIndex((m) => m.text.includes('Run succeeded')),
  ];
  expect(order.every((i) => i >= 0), JSON.stringify(thread.map((m) => m.text))).toBe(true);
  expect([...order].sort((x, y) => x - y)).toEqual(order);
  expect(thread).toHaveLength(order.length);
}

describe('Slack with two replicas', () => {
  it('two people clicking on two replicas (and one double-clicking) yield one decision', async () => {
    const [runId] = await fireAlert(a, { alertname: 'SlackReplicas', service: 'double' });
    const approval = await pendingApproval(a, runId!);
    await eventually(async () => slack.approvalMessages(approval.id)[0]);

    const answers = await Promise.all([click(a, slack, approval.id, SRE1), click(b, slack, approval.id, SRE2), click(b, slack, approval.id, SRE1), click(a, slack, approval.id, SRE2)]);
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);

    const run = await waitForRun(a, runId!, 'succeeded');
    expect(run.approvals).toHaveLength(1);
    expect(run.approvals[0].status).toBe('approved');
    const events = await timeline(a, runId!);
    expect(events.filter((e) => e.kind === 'approval.granted')).toHaveLength(1);
    expect(events.filter((e) => e.kind === 'step.succeeded' && e.data.stepId === 'rollback')).toHaveLength(1);

    // One approval message, one "approved" update naming the winner; the others were told privately.
    expect(slack.approvalMessages(approval.id)).toHaveLength(1);
    const winner = run.approvals[0].decidedBy.slice('slack:'.length);
    await eventually(async () => slack.ephemerals.filter((e) => e.text.includes('already')).length >= 3);
    // The "approved" update goes through the outbox: it may land after the private answers.
    const updates = await eventually(async () => {
      const sent = slack.ok('chat.update').filter((c) => JSON.stringify(c.params.blocks).includes(approval.id));
      return sent.length > 0 ? sent : undefined;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(slack.ok('chat.update').filter((c) => JSON.stringify(c.params.blocks).includes(approval.id))).toHaveLength(1);
    expect(JSON.stringify(updates[0]!.params.blocks)).toContain(`Approved* by <@${winner}>`);
  });

  it('429 and 500 storms: every message is posted, in order per thread, and no approval is duplicated', async () => {
    let n = 0;
    slack.setRule((method) => {
      if (!method.startsWith('chat.')) return undefined;
      n++;
      if (n > 30) return undefined;
      if (n % 7 === 0) return { status: 429, retryAfter: 1 };
      if (n % 3 === 0) return { status: 500 };
      if (n % 5 === 0) return { status: 503 };
      if (n === 2) return { error: 'internal_error' };
      return undefined;
    });
    const services = ['storm-a', 'storm-b', 'storm-c', 'storm-d'];
    const runIds = (await Promise.all(services.map((service, i) => fireAlert(i % 2 ? b : a, { alertname: 'SlackReplicas', service })))).map((ids) => ids[0]!);
    const approvals = await Promise.all(runIds.map((id) => pendingApproval(a, id)));
    // Approvals reach Slack despite the storm, and each is answered once.
    for (const [i, approval] of approvals.entries()) {
      expect((await click(i % 2 ? a : b, slack, approval.id, SRE1)).status).toBe(200);
    }
    await Promise.all(runIds.map((id) => waitForRun(a, id, 'succeeded', 30_000)));

    for (const [i, runId] of runIds.entries()) {
      const root = await rootMessage(slack, runId);
      const message = slack.approvalMessages(approvals[i].id);
      expect(message).toHaveLength(1);
      await eventually(async () => slack.thread(root.ts).some((m) => m.text.includes('Run succeeded')) && root.text.includes('(succeeded)'), 30_000);
      expectThreadInOrder(slack.thread(root.ts), message[0]!);
      expect(JSON.stringify(message[0]!.blocks)).toContain(`Approved* by <@${SRE1}>`);
      const events = await timeline(a, runId);
      expect(events.filter((e) => e.kind === 'approval.granted')).toHaveLength(1);
    }
    // The storm really happened, and the outbox is drained: nothing pending, nothing given up.
    expect(slack.calls.filter((c) => c.status === 429).length).toBeGreaterThan(0);
    expect(slack.calls.filter((c) => c.status >= 500).length).toBeGreaterThan(0);
    const { rows } = await db.pool.query<{ status: string; n: number }>("select status, count(*)::int as n from slack_outbox where kind <> 'ephemeral' group by status");
    expect(rows.filter((r) => r.status !== 'sent')).toEqual([]);
  });
});
