/**
 * Socket Mode (SLACK_APP_TOKEN): the app connects to the WebSocket URL that
 * apps.connections.open returns, receives interactivity and slash commands as
 * envelopes, and acks them over the socket. Same flow as over HTTP.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, startServer, type ServerProcess } from '../helpers/server.js';
import { startFakeSlack, type FakeSlack } from './fake-slack.js';
import { APP_TOKEN, SRE1, SRE2, approvalPlaybook, clickPayload, fireAlert, pendingApproval, rootMessage, serverEnv, testPolicies, timeline, waitForRun } from './helpers.js';

let db: TestDatabase;
let slack: FakeSlack;
let server: ServerProcess;
let policies: string;

beforeAll(async () => {
  [db, slack, policies] = await Promise.all([createTestDatabase(), startFakeSlack(), testPolicies()]);
  const playbooks = await playbooksDir({ 'flow.yaml': approvalPlaybook('socket-flow', 'SocketFlow') });
  const env = serverEnv({ databaseUrl: db.url, playbooks, policies, slack, extra: { SLACK_APP_TOKEN: APP_TOKEN } });
  delete env.SLACK_SIGNING_SECRET;
  server = await startServer(env);
});

afterAll(async () => {
  if (process.env.SLACK_TEST_LOGS) console.log(server?.logs());
  await server?.stop();
  await slack?.close();
  await db?.drop();
  if (policies) await rm(policies, { recursive: true, force: true });
});

describe('Slack Socket Mode', () => {
  it('connects through apps.connections.open, takes a click and a slash command over the socket', async () => {
    await eventually(async () => slack.sockets() > 0);
    const open = slack.ok('apps.connections.open');
    expect(open.length).toBeGreaterThan(0);
    expect(open[0]!.token).toBe(APP_TOKEN);

    // No HTTP endpoint in Socket Mode.
    const http = await httpJson('POST', `${server.url}/slack/events`, '{}', { 'content-type': 'application/json' });
    expect(http.status).toBe(404);

    const [runId] = await fireAlert(server, { alertname: 'SocketFlow', service: 'socket' });
    const approval = await pendingApproval(server, runId!);
    const message = await eventually(async () => slack.approvalMessages(approval.id)[0]);

    const ack = await slack.sendEnvelope('interactive', clickPayload({ approvalId: approval.id, userId: SRE1, channel: message.channel, messageTs: message.ts, ...(message.threadTs && { threadTs: message.threadTs }) }));
    expect(ack.envelope_id).toMatch(/^env-/);

    const run = await waitForRun(server, runId!, 'succeeded');
    expect(run.approvals[0]).toMatchObject({ status: 'approved', decidedBy: `slack:${SRE1}` });
    await eventually(async () => JSON.stringify(message.blocks).includes(`Approved* by <@${SRE1}>`));
    const root = await rootMessage(slack, runId!);
    await eventually(async () => slack.thread(root.ts).some((m) => m.text.includes('Run succeeded')));
    expect((await timeline(server, runId!)).filter((e) => e.kind === 'approval.granted')).toHaveLength(1);

    const command = await slack.sendEnvelope('slash_commands', {
      token: 'legacy',
      team_id: 'T0FAKE',
      channel_id: 'C0CMDCHAN',
      user_id: SRE2,
      command: '/firebreak',
      text: `status ${runId!.slice(0, 8)}`,
      response_url: 'http://127.0.0.1:9/unused',
      trigger_id: 'trigger-socket',
      api_app_id: 'A0FAKE',
    });
    expect(command.payload?.response_type).toBe('ephemeral');
    expect(command.payload?.text).toContain('succeeded');
    expect(command.payload?.text).toContain('socket-flow');
  });
});
