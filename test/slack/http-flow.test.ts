/**
 * Slack over HTTP, end to end: the real server (`firebreak serve`) against the
 * fake Slack Web API, with interactivity and slash commands sent as signed requests.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, type ServerProcess } from '../helpers/server.js';
import { startFakeSlack, type FakeSlack } from './fake-slack.js';
import {
  DEPLOY_TOKEN,
  FORM,
  ONCALL1,
  PUBLIC_URL,
  SRE1,
  SRE2,
  approvalPlaybook,
  click,
  clickPayload,
  commandBody,
  fireAlert,
  interactivityBody,
  pendingApproval,
  postSlack,
  rootMessage,
  startSlackServer,
  testPolicies,
  timeline,
  waitForRun,
} from './helpers.js';

let db: TestDatabase;
let policies: string;
let slack: FakeSlack;
let server: ServerProcess;

const MANUAL = `name: manual-wait
description: started from Slack
steps:
  - id: hello
    action: note
    with:
      text: "hello \${{ run.params.who }}"
  - id: pause
    action: wait
    with:
      duration: 60s
`;

beforeAll(async () => {
  [db, slack] = await Promise.all([createTestDatabase(), startFakeSlack()]);
  const playbooks = await playbooksDir({ 'flow.yaml': approvalPlaybook('slack-flow', 'SlackFlow'), 'manual.yaml': MANUAL });
  policies = await testPolicies();
  server = await startSlackServer({ databaseUrl: db.url, playbooks, policies, slack });
});

afterAll(async () => {
  if (process.env.SLACK_TEST_LOGS) console.log(server?.logs());
  await server?.stop();
  await slack?.close();
  await db?.drop();
  if (policies) await rm(policies, { recursive: true, force: true });
});

const allText = () => JSON.stringify(slack.calls.map((c) => c.params));

describe('Slack over HTTP', () => {
  it('alert -> run message -> approval -> signed click -> message updated -> run resumes -> thread shows completion', async () => {
    const [runId] = await fireAlert(server, { alertname: 'SlackFlow', service: 'checkout', severity: 'critical' }, 'checkout 5xx above 5%');
    expect(runId).toBeDefined();

    // One message in the playbook's channel with the alert and context.
    const root = await rootMessage(slack, runId!);
    expect(root.channel).toBe(slack.channelId('#inc-checkout'));
    expect(root.text).toContain('checkout 5xx above 5%');
    expect(JSON.stringify(root.blocks)).toContain(`${PUBLIC_URL}/runs/${runId}`);
    expect(JSON.stringify(root.blocks)).toContain('alertname=SlackFlow');

    // The approval: exact action, rendered (redacted) params, policy reasons, console link, buttons.
    const approval = await pendingApproval(server, runId!);
    const message = await eventually(async () => slack.approvalMessages(approval.id)[0]);
    expect(message.threadTs).toBe(root.ts);
    expect(message.broadcast).toBe(true);
    const blocks = JSON.stringify(message.blocks);
    expect(blocks).toContain('Approval needed: note');
    expect(blocks).toContain('roll back checkout');
    expect(blocks).toContain('[redacted]');
    expect(blocks).toContain(`${PUBLIC_URL}/runs/${runId}`);
    for (const reason of approval.reasons as string[]) expect(blocks).toContain(reason.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').slice(0, 40));
    const buttons = message.blocks!.find((b: any) => b.type === 'actions').elements;
    expect(buttons.map((b: any) => [b.action_id, b.value])).toEqual([
      ['firebreak_approve', approval.id],
      ['firebreak_reject', approval.id],
    ]);
    // The gather step's progress is in the thread already.
    expect(slack.thread(root.ts).some((m) => m.text.includes('`gather`') && m.text.includes('looks unwell'))).toBe(true);

    // A signed click by an SRE: acked at once, recorded through firebreak/approve.
    const started = Date.now();
    const res = await click(server, slack, approval.id, SRE1);
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeLessThan(3_000);

    const done = await waitForRun(server, runId!, 'succeeded');
    expect(done.approvals[0]).toMatchObject({ id: approval.id, status: 'approved', decidedBy: `slack:${SRE1}` });
    const events = await timeline(server, runId!);
    const granted = events.filter((e) => e.kind === 'approval.granted');
    expect(granted).toHaveLength(1);
    expect(granted[0].actor).toBe(`slack:${SRE1}`);

    // The message now says who decided and when, without buttons.
    await eventually(async () => message.history.length > 0 && message.text.includes('Approval approved'));
    const updated = JSON.stringify(message.blocks);
    expect(updated).toContain(`Approved* by <@${SRE1}> at 20`);
    expect(updated).not.toContain('firebreak_approve');

    // The thread shows the rest and the completion; the root message shows the outcome.
    await eventually(async () => slack.thread(root.ts).some((m) => m.text.includes('Run succeeded')));
    const thread = slack.thread(root.ts);
    const order = [
      thread.findIndex((m) => m.text.includes('`gather`')),
      thread.indexOf(message),
      ...['`rollback`', '`verify`', 'Run succeeded'].map((needle) => thread.findIndex((m) => m.text.includes(needle))),
    ];
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    await eventually(async () => root.text.includes('(succeeded)'));

    // Secrets never reach Slack.
    expect(allText()).not.toContain(DEPLOY_TOKEN);
  });

  it('refuses forged signatures, stale or future timestamps, and replays; nothing is recorded', async () => {
    const [runId] = await fireAlert(server, { alertname: 'SlackFlow', service: 'payments' });
    const approval = await pendingApproval(server, runId!);
    const message = await eventually(async () => slack.approvalMessages(approval.id)[0]);
    const body = interactivityBody(clickPayload({ approvalId: approval.id, userId: SRE1, channel: message.channel, messageTs: message.ts }));
    const now = Math.floor(Date.now() / 1000);

    const forged = await postSlack(server, { body, contentType: FORM, secret: 'not-the-secret' });
    expect(forged.status).toBe(401);
    expect(forged.body.error).toMatch(/signature/);

    const stale = await postSlack(server, { body, contentType: FORM, timestamp: now - 6 * 60 });
    expect(stale.status).toBe(401);
    expect(stale.body.error).toMatch(/stale|5 minutes/);

    const future = await postSlack(server, { body, contentType: FORM, timestamp: now + 6 * 60 });
    expect(future.status).toBe(401);

    const unsigned = await httpJson('POST', `${server.url}/slack/events`, body, { 'content-type': FORM });
    expect(unsigned.status).toBe(401);

    // A body changed after signing.
    const tampered = await postSlack(server, { body, contentType: FORM });
    const again = await postSlack(server, { body: body.replace(SRE1, SRE2), contentType: FORM, headers: { ...tampered.headers } });
    expect(again.status).toBe(401);

    // The valid one was accepted once; sending it again is a replay.
    expect(tampered.status).toBe(200);
    const replay = await postSlack(server, { body, contentType: FORM, headers: tampered.headers });
    expect(replay.status).toBe(401);
    expect(replay.body.error).toMatch(/replay/);

    await waitForRun(server, runId!, 'succeeded');
    const events = await timeline(server, runId!);
    expect(events.filter((e) => e.kind === 'approval.granted')).toHaveLength(1);
    expect(events.filter((e) => e.kind.startsWith('approval.') && e.actor === `slack:${SRE2}`)).toHaveLength(0);
  });

  it('an unauthorised click is answered privately and written to the timeline; a rejection aborts the run', async () => {
    const [runId] = await fireAlert(server, { alertname: 'SlackFlow', service: 'search' });
    const approval = await pendingApproval(server, runId!);
    const res = await click(server, slack, approval.id, ONCALL1);
    expect(res.status).toBe(200);

    const ephemeral = await eventually(async () => slack.ephemerals.find((e) => e.user === ONCALL1 && e.text.includes('cannot approve')));
    expect(ephemeral.text).toContain('not an approver');
    const refused = await eventually(async () => (await timeline(server, runId!)).find((e) => e.kind === 'approval.refused'));
    expect(refused.actor).toBe(`slack:${ONCALL1}`);
    expect((await pendingApproval(server, runId!)).id).toBe(approval.id);

    expect((await click(server, slack, approval.id, SRE2, 'reject')).status).toBe(200);
    const run = await waitForRun(server, runId!, 'aborted');
    expect(run.approvals[0]).toMatchObject({ status: 'rejected', decidedBy: `slack:${SRE2}` });
    const message = slack.approvalMessages(approval.id)[0]!;
    await eventually(async () => JSON.stringify(message.blocks).includes(`Rejected* by <@${SRE2}>`));
    const root = await rootMessage(slack, runId!);
    await eventually(async () => slack.thread(root.ts).some((m) => m.text.includes('Run aborted')));

    // A late click on a decided approval gets a private "already decided".
    await click(server, slack, approval.id, SRE1);
    await eventually(async () => slack.ephemerals.find((e) => e.user === SRE1 && e.text.includes('already rejected')));
  });

  it('/firebreak run, status and abort (checked by firebreak/authorize as slack:<user id>, and logged)', async () => {
    const run = await postSlack(server, { body: commandBody('run manual-wait who="dear reader"', SRE1), contentType: FORM });
    expect(run.status).toBe(200);
    expect(run.body.response_type).toBe('ephemeral');
    const runId = /\|([0-9a-f-]{36})>/.exec(run.body.text)?.[1];
    expect(runId).toBeDefined();
    const started = await waitForRun(server, runId!, 'running');
    expect(started.startedBy).toBe(`slack:${SRE1}`);
    expect(started.params).toEqual({ who: 'dear reader' });

    const list = await postSlack(server, { body: commandBody('status', SRE2), contentType: FORM });
    expect(list.body.text).toContain(runId!.slice(0, 8));

    const one = await postSlack(server, { body: commandBody(`status ${runId!.slice(0, 8)}`, SRE2), contentType: FORM });
    expect(one.body.text).toContain('manual-wait');
    expect(one.body.text).toContain('`hello`');

    const bad = await postSlack(server, { body: commandBody('run no-such-playbook', SRE1), contentType: FORM });
    expect(bad.body.text).toContain('not found');
    const help = await postSlack(server, { body: commandBody('', SRE1), contentType: FORM });
    expect(help.body.text).toContain('/firebreak run');

    // Someone in no group may not start a run; the decision is on the access chain.
    const notStarted = await postSlack(server, { body: commandBody('run manual-wait', 'UNOBODY1'), contentType: FORM });
    expect(notStarted.body.text).toContain('may not start that playbook');
    const startDecisions = await db.pool.query("select chain_id, kind, actor, data from timeline_events where data->>'action' = 'run.start' order by id");
    expect(startDecisions.rows.map((r) => [r.chain_id, r.kind, r.actor])).toEqual([
      [runId, 'access.allowed', `slack:${SRE1}`],
      ['access', 'access.denied', 'slack:UNOBODY1'],
    ]);
    expect(startDecisions.rows[0].data.user).toMatchObject({ id: `slack:${SRE1}`, method: 'slack', verified: true });

    // Someone outside the responder groups may not abort.
    const refused = await postSlack(server, { body: commandBody(`abort ${runId}`, 'UNOBODY1'), contentType: FORM });
    expect(refused.body.text).toContain('may not abort');
    expect((await timeline(server, runId!)).find((e) => e.kind === 'access.denied')?.actor).toBe('slack:UNOBODY1');

    const aborted = await postSlack(server, { body: commandBody(`abort ${runId} enough testing`, ONCALL1), contentType: FORM });
    expect(aborted.body.text).toMatch(/abort/);
    const finished = await waitForRun(server, runId!, 'aborted');
    expect(finished.abortReason).toBe('enough testing');
    const events = await timeline(server, runId!);
    expect(events.find((e) => e.kind === 'access.allowed' && e.data.action === 'run.abort')?.actor).toBe(`slack:${ONCALL1}`);
    expect(events.find((e) => e.kind === 'run.abort_requested')?.actor).toBe(`slack:${ONCALL1}`);
  });

  it('answers url_verification and refuses a bad body with a clear error', async () => {
    const body = JSON.stringify({ type: 'url_verification', challenge: 'c-123', token: 'x' });
    const res = await postSlack(server, { body, contentType: 'application/json' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ challenge: 'c-123' });
    const bad = await postSlack(server, { body: 'payload=%7Bnot-json', contentType: FORM });
    expect(bad.status).toBe(400);
    expect(bad.body.details[0].path).toBe('payload');
  });
});
