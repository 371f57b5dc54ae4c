/**
 * The kill switch from Slack (`/firebreak pause|resume`, signed slash commands
 * as the verified Slack user, checked by firebreak/authorize), and a tripped
 * circuit breaker said in the run's Slack thread (the local Slack Web API).
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { startFakeSlack, type FakeSlack } from '../slack/fake-slack.js';
import { commandBody, FORM, ONCALL1, postSlack, SIGNING_SECRET, SRE1, testPolicies } from '../slack/helpers.js';

const AUDIT_KEY = 'ef'.repeat(32);
let db: TestDatabase;
let dir: string;
let policies: string;
let slack: FakeSlack;
let server: ServerProcess;
let alice = '';

const slash = async (text: string, user: string) => {
  const res = await postSlack(server, { body: commandBody(text, user), contentType: FORM });
  expect(res.status).toBe(200);
  return res.body.text as string;
};
const automation = async () => (await httpJson('GET', `${server.url}/api/automation`, undefined, { authorization: `Bearer ${alice}` })).body;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await playbooksDir(
    {
      'plain.yaml': `
name: plain
triggers:
  - matchers: ['alertname="Plain"']
steps:
  - id: note
    action: note
    with: { text: "plain" }
`,
      'flaky.yaml': `
name: flaky
triggers:
  - matchers: ['alertname="Flaky"']
circuit_breaker:
  failures: 1
steps:
  - id: restart
    action: http.request
    retry: { attempts: 1 }
    with: { method: POST, url: "http://127.0.0.1:9/restart" }
`,
    },
  );
  policies = await testPolicies();
  slack = await startFakeSlack();
  server = await startServer({
    DATABASE_URL: db.url,
    FIREBREAK_PLAYBOOKS: dir,
    FIREBREAK_POLICIES: policies,
    FIREBREAK_AUDIT_KEY: AUDIT_KEY,
    FIREBREAK_HTTP_ALLOW: '127.0.0.1',
    SLACK_BOT_TOKEN: 'xoxb-test-token',
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_API_URL: slack.apiUrl,
    SLACK_CHANNEL: '#firebreak',
  });
  const created = await runCli(['token', 'create', 'alice'], { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: AUDIT_KEY });
  expect(created.code, created.stderr).toBe(0);
  alice = created.stdout.trim();
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await slack?.close();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
  if (policies) await rm(policies, { recursive: true, force: true });
});

describe('/firebreak pause|resume', () => {
  it('pauses as the Slack user (on-call may), refuses an on-call resume, and an SRE resumes', async () => {
    expect(await slash('pause', ONCALL1)).toMatch(/say why/);
    expect(await slash('pause db failover in progress', ONCALL1)).toMatch(/Paused \*all automation\*/);
    expect(await automation()).toMatchObject({ paused: true, pausedBy: `slack:${ONCALL1}`, reason: 'db failover in progress' });
    expect(await slash('pause again', SRE1)).toMatch(/already paused by slack:U0ONC1/);

    expect(await slash('resume', ONCALL1)).toMatch(/You may not resume automation: no rule lets slack:U0ONC1 automation.resume/);
    expect((await automation()).paused).toBe(true);
    expect(await slash('resume failover done', SRE1)).toMatch(/Resumed \*all automation\*/);
    expect((await automation()).paused).toBe(false);

    // The first word names a playbook when one by that name is loaded.
    expect(await slash('pause plain checking its target', ONCALL1)).toMatch(/Paused playbook \*plain\*/);
    const status = await automation();
    expect(status.paused).toBe(false);
    expect(status.playbooks.find((p: { name: string }) => p.name === 'plain').pause).toMatchObject({ pausedBy: `slack:${ONCALL1}`, reason: 'checking its target' });
    expect(await slash('resume plain', SRE1)).toMatch(/Resumed playbook \*plain\*/);

    const { rows } = await db.pool.query(`select kind, actor from timeline_events where chain_id = 'automation' order by seq`);
    expect(rows.map((r) => `${r.kind} ${r.actor}`)).toEqual([
      `automation.paused slack:${ONCALL1}`,
      `automation.resumed slack:${SRE1}`,
      `automation.paused slack:${ONCALL1}`,
      `automation.resumed slack:${SRE1}`,
    ]);
    expect(await slash('help', SRE1)).toContain('/firebreak pause [playbook] <reason>');
  });

  it('a playbook name typed with capitals names that playbook: resuming it never resumes all automation', async () => {
    expect(await slash('pause everything: bad deploy', ONCALL1)).toMatch(/Paused \*all automation\*/);
    expect(await slash('pause Plain its target is down', ONCALL1)).toMatch(/Paused playbook \*plain\*/);
    expect((await automation()).playbooks.find((p: { name: string }) => p.name === 'plain').pause).toMatchObject({ reason: 'its target is down' });
    expect(await slash('resume PLAIN target is back', SRE1)).toMatch(/Resumed playbook \*plain\*/);
    const status = await automation();
    expect(status).toMatchObject({ paused: true, reason: 'everything: bad deploy' });
    expect(status.playbooks.find((p: { name: string }) => p.name === 'plain').pause).toBeNull();
    expect(await slash('resume deploy rolled back', SRE1)).toMatch(/Resumed \*all automation\*/);
  });
});

describe('circuit breaker in Slack', () => {
  it('says in the run\'s thread that the breaker tripped and the playbook is paused', async () => {
    const fired = await httpJson('POST', `${server.url}/hooks/generic`, { labels: { alertname: 'Flaky', service: 'queue' }, startsAt: new Date().toISOString() });
    const runId: string = fired.body.startedRuns[0];
    await eventually(async () => (await automation()).playbooks.find((p: { name: string; pause: unknown }) => p.name === 'flaky' && p.pause)).catch(async (e) => {
      throw new Error(`${e.message}: ${JSON.stringify(await automation())} ${JSON.stringify((await httpJson('GET', `${server.url}/api/runs/${runId}/timeline`, undefined, { authorization: `Bearer ${alice}` })).body.events?.map((x: { summary: string }) => x.summary))}`);
    });
    const root = await eventually(async () => slack.roots().find((m) => JSON.stringify(m).includes(runId))).catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(slack.messages.map((m) => [m.ts, (m as { threadTs?: string }).threadTs, m.text]))}`);
    });
    const replies = await eventually(async () => {
      const thread = slack.thread(root.ts);
      return thread.some((m) => /Circuit breaker of flaky tripped/.test(m.text ?? '')) ? thread : undefined;
    }).catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(slack.thread(root.ts).map((m) => m.text))}`);
    });
    expect(replies.map((m) => m.text).join('\n')).toMatch(/Circuit breaker of flaky tripped\*: 1 failed run in a row\. The playbook is \*paused\*/);
  });
});
