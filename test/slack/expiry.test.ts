/**
 * Approvals that nobody answers expire and the run follows on_timeout: abort,
 * skip, or escalate with a new message. A waiting run is due at its
 * approval's deadline (its run_at), so the worker that claims it then expires
 * it; the test moves the database's clock past the deadline instead of waiting.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { advanceDatabaseClock, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, type ServerProcess } from '../helpers/server.js';
import { startFakeSlack, type FakeSlack } from './fake-slack.js';
import { ONCALL1, approvalPlaybook, click, fireAlert, pendingApproval, rootMessage, startSlackServer, testPolicies, timeline, waitForRun } from './helpers.js';

let db: TestDatabase;
let slack: FakeSlack;
let server: ServerProcess;
let policies: string;

beforeAll(async () => {
  [db, slack, policies] = await Promise.all([createTestDatabase(), startFakeSlack(), testPolicies()]);
  const playbooks = await playbooksDir({
    'abort.yaml': approvalPlaybook('expire-abort', 'ExpireAbort', { timeout: '30m' }),
    'skip.yaml': approvalPlaybook('expire-skip', 'ExpireSkip', { timeout: '30m', onTimeout: 'skip' }),
    'escalate.yaml': approvalPlaybook('expire-escalate', 'ExpireEscalate', { timeout: '45m', onTimeout: 'escalate', escalateTo: [`slack:${ONCALL1}`] }),
  });
  server = await startSlackServer({ databaseUrl: db.url, playbooks, policies, slack });
});

afterAll(async () => {
  if (process.env.SLACK_TEST_LOGS) console.log(server?.logs());
  await server?.stop();
  await slack?.close();
  await db?.drop();
  if (policies) await rm(policies, { recursive: true, force: true });
});

async function expiredMessage(approvalId: string) {
  const message = await eventually(async () => slack.approvalMessages(approvalId)[0]);
  await eventually(async () => JSON.stringify(message.blocks).includes('*Expired*'));
  expect(JSON.stringify(message.blocks)).not.toContain('firebreak_approve');
  return message;
}

describe('approval expiry', () => {
  it('on_timeout abort, skip and escalate', async () => {
    const [[abortRun], [skipRun], [escalateRun]] = await Promise.all([
      fireAlert(server, { alertname: 'ExpireAbort', service: 'exp-abort' }),
      fireAlert(server, { alertname: 'ExpireSkip', service: 'exp-skip' }),
      fireAlert(server, { alertname: 'ExpireEscalate', service: 'exp-escalate' }),
    ]);
    const [abortApproval, skipApproval, firstRound] = await Promise.all([pendingApproval(server, abortRun!), pendingApproval(server, skipRun!), pendingApproval(server, escalateRun!, 1)]);
    // A waiting run is due exactly at its approval's deadline: no sweep, no second timer.
    const { rows: due } = await db.pool.query(
      `select bool_and(r.status = 'waiting' and r.run_at = a.expires_at) as at_deadline from runs r join approvals a on a.run_id = r.id where a.id = any($1::uuid[])`,
      [[abortApproval.id, skipApproval.id, firstRound.id]],
    );
    expect(due[0].at_deadline).toBe(true);
    // The 30-minute ones expire once the database's clock passes their deadline (the 45-minute one not yet).
    await advanceDatabaseClock(db.pool, '31 minutes');

    // abort (the default): the message says it expired, the run is aborted, the thread says so.
    const abortMessage = await expiredMessage(abortApproval.id);
    expect(JSON.stringify(abortMessage.blocks)).toContain('on_timeout: abort');
    const aborted = await waitForRun(server, abortRun!, 'aborted');
    expect(aborted.approvals[0].status).toBe('expired');
    const abortRoot = await rootMessage(slack, abortRun!);
    await eventually(async () => slack.thread(abortRoot.ts).some((m) => m.text.includes('Run aborted') && m.text.includes('expired')));

    // skip: the step is skipped and the run goes on to succeed.
    await expiredMessage(skipApproval.id);
    const skipped = await waitForRun(server, skipRun!, 'succeeded');
    expect(skipped.steps.map((s: any) => [s.id, s.status])).toEqual([
      ['gather', 'succeeded'],
      ['rollback', 'skipped'],
      ['verify', 'succeeded'],
    ]);
    const skipRoot = await rootMessage(slack, skipRun!);
    await eventually(async () => slack.thread(skipRoot.ts).some((m) => m.text.includes('`rollback` skipped')));

    // escalate: a new approval message asks the escalation approvers, who can answer it.
    expect((await pendingApproval(server, escalateRun!, 1)).status).toBe('pending');
    await advanceDatabaseClock(db.pool, '15 minutes');
    await expiredMessage(firstRound.id);
    const second = await pendingApproval(server, escalateRun!, 2);
    expect(second.approvers).toEqual([`slack:${ONCALL1}`]);
    const secondMessage = await eventually(async () => slack.approvalMessages(second.id)[0]);
    expect(secondMessage.text).toContain('Approval needed');
    expect(JSON.stringify(secondMessage.blocks)).toContain(`<@${ONCALL1}>`);
    expect(JSON.stringify(secondMessage.blocks)).toContain('Escalated approval needed');
    expect((await click(server, slack, second.id, ONCALL1)).status).toBe(200);
    const escalated = await waitForRun(server, escalateRun!, 'succeeded');
    expect(escalated.approvals.map((a: any) => [a.round, a.status])).toEqual([
      [1, 'expired'],
      [2, 'approved'],
    ]);
    const kinds = (await timeline(server, escalateRun!)).map((e) => e.kind);
    expect(kinds.indexOf('approval.expired')).toBeLessThan(kinds.indexOf('approval.escalated'));
    const escalateRoot = await rootMessage(slack, escalateRun!);
    await eventually(async () => slack.thread(escalateRoot.ts).some((m) => m.text.includes('escalated to')));
  });
});
