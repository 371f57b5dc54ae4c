/**
 * What alert content can do in Slack: nothing but be read. Summaries, labels,
 * generatorURL and slack.message interpolations reach the fake Slack Web API
 * with `&`, `<`, `>` as entities (no @channel, no links with our wording).
 * And what a signature can do: only `v0=<64 hex>` reaches Bolt, and the
 * replay guard remembers the HMAC, so no respelling replays a request.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, type ServerProcess } from '../helpers/server.js';
import { startFakeSlack, type FakeSlack } from './fake-slack.js';
import { commandBody, FORM, postSlack, rootMessage, SIGNING_SECRET, SRE1, startSlackServer, testPolicies, waitForRun } from './helpers.js';

let db: TestDatabase;
let slack: FakeSlack;
let server: ServerProcess;

const ANNOUNCE = `name: announce
triggers:
  - matchers: ['alertname="Phish"']
channel: "#phish"
steps:
  - id: tell
    action: slack.message
    with:
      text: "*\${{ alert.labels.service }}*: \${{ alert.annotations.summary }} (<\${{ alert.generatorURL }}|graph>)"
`;

const SUMMARY = '<!channel> urgent: sign in at <https://evil.example/login|Open Firebreak> & approve';
const LABEL = '<!here|here>';
const GENERATOR = 'https://evil.example/login|Open Firebreak';

beforeAll(async () => {
  [db, slack] = await Promise.all([createTestDatabase(), startFakeSlack()]);
  const playbooks = await playbooksDir({ 'announce.yaml': ANNOUNCE });
  const policies = await testPolicies();
  server = await startSlackServer({ databaseUrl: db.url, playbooks, policies, slack });
});

afterAll(async () => {
  await server?.stop();
  await slack?.close();
  await db?.drop();
});

/** Everything the bot posted or updated, as Slack received it. */
const posted = () => JSON.stringify(slack.calls.filter((c) => c.method.startsWith('chat.')).map((c) => c.params));

describe('alert text in Slack', () => {
  it('posts summaries, labels, generatorURL and slack.message interpolations escaped for mrkdwn', async () => {
    const res = await httpJson('POST', `${server.url}/hooks/alertmanager`, {
      version: '4',
      groupKey: '{}:{alertname="Phish"}',
      status: 'firing',
      receiver: 'firebreak',
      groupLabels: { alertname: 'Phish' },
      commonLabels: {},
      commonAnnotations: {},
      externalURL: 'http://alertmanager.example',
      alerts: [
        {
          status: 'firing',
          labels: { alertname: 'Phish', service: LABEL, severity: 'critical' },
          annotations: { summary: SUMMARY },
          startsAt: new Date().toISOString(),
          endsAt: '0001-01-01T00:00:00Z',
          generatorURL: GENERATOR,
          fingerprint: 'f00dfeed',
        },
      ],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const runId = res.body.runs[0];
    await waitForRun(server, runId, 'succeeded');
    const root = await rootMessage(slack, runId);
    const step = await eventually(async () => slack.messages.find((m) => m.text.includes('graph>')));
    await eventually(async () => root.text.includes('(succeeded)'));

    const all = posted();
    // No broadcast, no mention, no link that says what the attacker wrote.
    expect(all).not.toContain('<!channel>');
    expect(all).not.toContain('<!here');
    expect(all).not.toMatch(/<https:\/\/evil\.example[^>]*\|Open Firebreak>/);
    expect(all).not.toContain('|Open Firebreak>');
    // The text is still there, readable, as entities.
    expect(root.text).toContain('&lt;!channel&gt; urgent');
    expect(JSON.stringify(root.blocks)).toContain('&lt;!here|here&gt;');
    // The Source link keeps our label; the URL's `|` is encoded so it cannot supply one.
    expect(JSON.stringify(root.blocks)).toContain('<https://evil.example/login%7COpen%20Firebreak|Source>');
    // The playbook's own markup stays (bold, its link); the alert's values inside it are escaped.
    // In the playbook's link, the value is its URL: a `|` in it cannot start the label.
    expect(step.text).toBe('*&lt;!here|here&gt;*: &lt;!channel&gt; urgent: sign in at &lt;https://evil.example/login|Open Firebreak&gt; &amp; approve (<https://evil.example/login%7COpen Firebreak|graph>)');
  });
});

describe('Slack request signatures', () => {
  const signed = (body: string, ts: number) => `v0=${createHmac('sha256', SIGNING_SECRET).update(`v0:${ts}:${body}`).digest('hex')}`;

  it('refuses a signed slash command replayed with text appended to its signature', async () => {
    const body = commandBody('status', SRE1);
    const ts = Math.floor(Date.now() / 1000);
    const headers = { 'content-type': FORM, 'x-slack-request-timestamp': String(ts), 'x-slack-signature': signed(body, ts) };
    const first = await postSlack(server, { body, contentType: FORM, headers });
    expect(first.status).toBe(200);
    for (const respelt of [`${headers['x-slack-signature']}=x`, `${headers['x-slack-signature']}=`, headers['x-slack-signature'].toUpperCase().replace('V0=', 'v0='), ` ${headers['x-slack-signature']}`]) {
      const replay = await postSlack(server, { body, contentType: FORM, headers: { ...headers, 'x-slack-signature': respelt } });
      expect(replay.status, respelt).toBe(401);
    }
  });

  it('refuses a fresh request whose signature is not exactly v0=<64 lower-case hex>, before Bolt sees it', async () => {
    const body = commandBody('status', SRE1);
    const ts = Math.floor(Date.now() / 1000);
    const good = signed(body, ts);
    const res = await postSlack(server, { body, contentType: FORM, headers: { 'content-type': FORM, 'x-slack-request-timestamp': String(ts), 'x-slack-signature': `${good}=x` } });
    expect(res.status).toBe(401);
    expect(res.body.error).toMatch(/v0=<64 lower-case hex digits>/);
    // The well-formed one still works once.
    const ok = await postSlack(server, { body, contentType: FORM, headers: { 'content-type': FORM, 'x-slack-request-timestamp': String(ts), 'x-slack-signature': good } });
    expect(ok.status).toBe(200);
  });

  it('answers a signed body nested 100,000 deep with 400, and keeps serving', async () => {
    const body = `{"type":"event_callback","event":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    const res = await postSlack(server, { body, contentType: 'application/json' });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toMatch(/deeper than 64/);
    expect((await httpJson('GET', `${server.url}/healthz`)).status).toBe(200);
  });
});
