/** Shared set-up for the Slack tests: policy bundle with test data, signed requests, servers wired to the fake Slack. */
import { createHmac } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { extract, pack } from 'tar-stream';
import { request } from 'undici';
import { ROOT, eventually, httpJson, startServer, type ServerProcess } from '../helpers/server.js';
import type { FakeSlack } from './fake-slack.js';

export const SIGNING_SECRET = 'test-signing-secret-0123456789';
export const BOT_TOKEN = 'xoxb-test-token';
export const APP_TOKEN = 'xapp-test-token';
export const DEPLOY_TOKEN = 'sup3r-s3cret-deploy-token';
export const PUBLIC_URL = 'http://firebreak.example.test';

/** SRE approvers in the shipped data.json (group:sre). */
export const SRE1 = 'U0SRE1';
export const SRE2 = 'U0SRE2';
/** On-call (not an approver of high-impact steps). */
export const ONCALL1 = 'U0ONC1';

async function untar(tar: Buffer): Promise<Array<{ name: string; body: Buffer; mode: number }>> {
  const out: Array<{ name: string; body: Buffer; mode: number }> = [];
  const ex = extract();
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      if (entry.header.type === 'file') out.push({ name: entry.header.name, body: Buffer.concat(chunks), mode: entry.header.mode ?? 0o644 });
    }
  })();
  ex.end(tar);
  await done;
  return out;
}

/**
 * A copy of the committed policy bundle with its data.json changed by `patch`
 * (the rules stay the real ones). By default the change-freeze windows are
 * cleared, so the tests do not depend on the calendar.
 */
export async function testPolicies(patch: (data: any) => void = () => {}): Promise<string> {
  const bytes = await readFile(join(ROOT, 'policies', 'bundle.tgz'));
  const entries = await untar(gunzipSync(bytes));
  const p = pack();
  for (const e of entries) {
    let body = e.body;
    if (e.name.replace(/^\/+/, '') === 'data.json') {
      const data = JSON.parse(body.toString('utf8'));
      data.change_freeze.windows = [];
      patch(data);
      body = Buffer.from(JSON.stringify(data));
    }
    p.entry({ name: e.name, mode: e.mode }, body);
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  const dir = await mkdtemp(join(tmpdir(), 'fb-slack-policies-'));
  await writeFile(join(dir, 'bundle.tgz'), gzipSync(Buffer.concat(chunks)));
  return dir;
}

export function sign(body: string, timestamp: number, secret = SIGNING_SECRET): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

export interface SlackPost {
  body: string;
  contentType: string;
  timestamp?: number;
  secret?: string;
  /** Use exactly these headers (replays). */
  headers?: Record<string, string>;
}

/** POST to /slack/events as Slack would: signed with HMAC v0 over `v0:<ts>:<raw body>`. */
export async function postSlack(server: { url: string }, post: SlackPost): Promise<{ status: number; body: any; headers: Record<string, string> }> {
  const ts = post.timestamp ?? Math.floor(Date.now() / 1000);
  const headers = post.headers ?? {
    'content-type': post.contentType,
    'x-slack-request-timestamp': String(ts),
    'x-slack-signature': sign(post.body, ts, post.secret),
  };
  const res = await request(`${server.url}/slack/events`, { method: 'POST', headers, body: post.body });
  const text = await res.body.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* text */
  }
  return { status: res.statusCode, body, headers: { ...headers } };
}

let actionCounter = 0;

/** A block_actions payload for a click on an approval button. */
export function clickPayload(options: { approvalId: string; userId: string; decision?: 'approve' | 'reject'; channel: string; messageTs: string; threadTs?: string }): Record<string, unknown> {
  const actionId = options.decision === 'reject' ? 'firebreak_reject' : 'firebreak_approve';
  return {
    type: 'block_actions',
    team: { id: 'T0FAKE', domain: 'fake' },
    user: { id: options.userId, username: options.userId.toLowerCase(), team_id: 'T0FAKE' },
    api_app_id: 'A0FAKE',
    token: 'legacy-verification-token',
    trigger_id: `trigger-${++actionCounter}`,
    channel: { id: options.channel, name: 'incident' },
    container: { type: 'message', message_ts: options.messageTs, channel_id: options.channel, is_ephemeral: false, ...(options.threadTs && { thread_ts: options.threadTs }) },
    message: { type: 'message', ts: options.messageTs, ...(options.threadTs && { thread_ts: options.threadTs }), text: 'approval' },
    response_url: 'http://127.0.0.1:9/unused',
    actions: [
      {
        type: 'button',
        block_id: 'firebreak_approval',
        action_id: actionId,
        value: options.approvalId,
        text: { type: 'plain_text', text: actionId === 'firebreak_approve' ? 'Approve' : 'Reject' },
        action_ts: `${Date.now() / 1000}${++actionCounter}`,
      },
    ],
  };
}

export function interactivityBody(payload: unknown): string {
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

export function commandBody(text: string, userId: string, channel = 'C0CMDCHAN'): string {
  return new URLSearchParams({
    token: 'legacy-verification-token',
    team_id: 'T0FAKE',
    team_domain: 'fake',
    channel_id: channel,
    channel_name: 'incident',
    user_id: userId,
    user_name: userId.toLowerCase(),
    command: '/firebreak',
    text,
    api_app_id: 'A0FAKE',
    response_url: 'http://127.0.0.1:9/unused',
    trigger_id: `trigger-${++actionCounter}`,
  }).toString();
}

export const FORM = 'application/x-www-form-urlencoded';

/** Click an approval button on the fake's message, signed, through a server. */
export async function click(server: { url: string }, slack: FakeSlack, approvalId: string, userId: string, decision: 'approve' | 'reject' = 'approve') {
  const message = await eventually(async () => slack.approvalMessages(approvalId)[0]);
  const payload = clickPayload({ approvalId, userId, decision, channel: message.channel, messageTs: message.ts, ...(message.threadTs && { threadTs: message.threadTs }) });
  return postSlack(server, { body: interactivityBody(payload), contentType: FORM });
}

export interface SlackEnv {
  databaseUrl: string;
  playbooks: string;
  policies: string;
  slack: FakeSlack;
  extra?: Record<string, string>;
}

export function serverEnv(e: SlackEnv): Record<string, string> {
  return {
    DATABASE_URL: e.databaseUrl,
    FIREBREAK_PLAYBOOKS: e.playbooks,
    FIREBREAK_POLICIES: e.policies,
    FIREBREAK_PUBLIC_URL: PUBLIC_URL,
    FIREBREAK_SECRET_DEPLOY_TOKEN: DEPLOY_TOKEN,
    FIREBREAK_WORKERS: '2',
    FIREBREAK_POLL_MS: '100',
    SLACK_BOT_TOKEN: BOT_TOKEN,
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_API_URL: e.slack.apiUrl,
    SLACK_CHANNEL: '#firebreak',
    LOG_LEVEL: 'warn',
    ...e.extra,
  };
}

export async function startSlackServer(e: SlackEnv): Promise<ServerProcess> {
  return startServer(serverEnv(e));
}

/** Fire a generic alert; returns the ids of the runs it started. */
export async function fireAlert(server: { url: string }, labels: Record<string, string>, summary?: string): Promise<string[]> {
  const res = await httpJson('POST', `${server.url}/hooks/generic`, { labels, summary: summary ?? `${labels.alertname} on ${labels.service ?? '?'}`, severity: labels.severity ?? 'critical', startsAt: new Date().toISOString() });
  if (res.status !== 202) throw new Error(`alert not accepted: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body.runs ?? res.body.items?.flatMap((i: any) => i.runs ?? []) ?? []) as string[];
}

export async function getRun(server: { url: string }, runId: string): Promise<any> {
  const res = await httpJson('GET', `${server.url}/api/runs/${runId}`);
  return res.body;
}

export async function waitForRun(server: { url: string }, runId: string, status: string | string[], timeoutMs = 20_000): Promise<any> {
  const wanted = Array.isArray(status) ? status : [status];
  let last: any;
  try {
    return await eventually(async () => {
      last = await getRun(server, runId);
      return wanted.includes(last.status) ? last : undefined;
    }, timeoutMs);
  } catch (err) {
    throw new Error(`run ${runId} not ${wanted.join('|')} in ${timeoutMs} ms; last seen: ${JSON.stringify(last)}`, { cause: err });
  }
}

export async function pendingApproval(server: { url: string }, runId: string, round?: number): Promise<any> {
  return eventually(async () => {
    const run = await getRun(server, runId);
    return run.approvals?.find((a: any) => a.status === 'pending' && (round === undefined || a.round === round));
  });
}

export async function timeline(server: { url: string }, runId: string): Promise<any[]> {
  const res = await httpJson('GET', `${server.url}/api/runs/${runId}/timeline`);
  return res.body.events ?? res.body.items ?? [];
}

/** The run's root message in the fake (found by the console link in its blocks). */
export async function rootMessage(slack: FakeSlack, runId: string) {
  return eventually(async () => slack.roots().find((m) => JSON.stringify(m.history[0]?.blocks ?? m.blocks ?? '').includes(`/runs/${runId}`) && !JSON.stringify(m.history[0]?.blocks ?? m.blocks).includes('firebreak_approve')));
}

/** A playbook whose high-impact step needs an approval from group:sre (the shipped policy). */
export function approvalPlaybook(name: string, alertname: string, options: { timeout?: string; onTimeout?: string; escalateTo?: string[]; channel?: string } = {}): string {
  return `name: ${name}
description: Slack test playbook ${name}
triggers:
  - source: generic
    matchers:
      - alertname="${alertname}"
channel: "${options.channel ?? '#inc-${{ alert.labels.service }}'}"
steps:
  - id: gather
    action: note
    with:
      text: "service \${{ alert.labels.service }} looks unwell"
  - id: rollback
    action: note
    impact: high
${options.timeout ? `    approval_timeout: ${options.timeout}\n` : ''}${options.onTimeout ? `    on_timeout: ${options.onTimeout}\n` : ''}${options.escalateTo ? `    escalate_to: [${options.escalateTo.map((e) => `"${e}"`).join(', ')}]\n` : ''}    with:
      text: "roll back \${{ alert.labels.service }}"
      data:
        authorization: "Bearer \${{ secrets.DEPLOY_TOKEN }}"
        service: "\${{ alert.labels.service }}"
  - id: verify
    action: note
    with:
      text: "verified \${{ alert.labels.service }}"
`;
}
