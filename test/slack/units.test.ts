/** The small pure parts: signature checks, body parsing, command parsing, error classification, rendering. */
import { describe, expect, it } from 'vitest';
import { classifySlackError, outboxBackoff } from '../../src/slack/outbox.js';
import { parseRunCommand, tokenize } from '../../src/slack/commands.js';
import { parseSlackBody, verifySlackSignature } from '../../src/slack/receiver.js';
import { actorLabel, escapeText, renderApproval, type RunInfo } from '../../src/slack/render.js';
import { slackApiUrl } from '../../src/slack/service.js';
import { SIGNING_SECRET, sign } from './helpers.js';

const nowMs = Date.UTC(2026, 10, 22, 12, 0, 0);
const now = Math.floor(nowMs / 1000);

describe('verifySlackSignature', () => {
  const body = 'payload=%7B%7D';
  const ok = (ts: number, signature = sign(body, ts)) => () => verifySlackSignature({ signingSecret: SIGNING_SECRET, rawBody: body, signature, timestamp: String(ts), nowMs });
  it('accepts a fresh, correctly signed body', () => expect(ok(now - 60)).not.toThrow());
  it('refuses a wrong secret, a changed body, a stale or future timestamp, missing headers', () => {
    expect(ok(now, sign(body, now, 'other'))).toThrow(/signature mismatch/);
    expect(() => verifySlackSignature({ signingSecret: SIGNING_SECRET, rawBody: `${body}x`, signature: sign(body, now), timestamp: String(now), nowMs })).toThrow(/mismatch/);
    expect(ok(now - 301)).toThrow(/stale|5 minutes/);
    expect(ok(now + 301)).toThrow(/future/);
    expect(() => verifySlackSignature({ signingSecret: SIGNING_SECRET, rawBody: body, signature: undefined, timestamp: String(now), nowMs })).toThrow(/missing/);
    expect(ok(now, 'v1=abc')).toThrow(/version/);
  });
});

describe('parseSlackBody', () => {
  it('reads interactivity payloads, slash command forms and event JSON', () => {
    expect(parseSlackBody('payload=%7B%22type%22%3A%22block_actions%22%7D', 'application/x-www-form-urlencoded')).toEqual({ type: 'block_actions' });
    expect(parseSlackBody('command=%2Ffirebreak&text=status', 'application/x-www-form-urlencoded')).toEqual({ command: '/firebreak', text: 'status' });
    expect(parseSlackBody('{"type":"event_callback"}', 'application/json')).toEqual({ type: 'event_callback' });
  });
  it('names the bad field', () => {
    expect(() => parseSlackBody('payload=nope', 'application/x-www-form-urlencoded')).toThrow(/payload/);
    expect(() => parseSlackBody('[1]', 'application/json')).toThrow(/JSON object/);
  });
});

describe('/firebreak parsing', () => {
  it('splits words, honouring plain and smart quotes', () => {
    expect(tokenize('run  restart service=api note="two words" who=“dear reader”')).toEqual(['run', 'restart', 'service=api', 'note=two words', 'who=dear reader']);
  });
  it('parses run arguments and refuses what is not key=value', () => {
    expect(parseRunCommand(['restart', 'service=api', 'url=http://x/?a=b', '--dry-run'])).toEqual({ playbook: 'restart', params: { service: 'api', url: 'http://x/?a=b' }, dryRun: true });
    expect(() => parseRunCommand([])).toThrow(/usage/);
    expect(() => parseRunCommand(['p', 'oops'])).toThrow(/key=value/);
  });
});

describe('outbox retry decisions', () => {
  const e = (props: Record<string, unknown>) => Object.assign(new Error('x'), props);
  it('waits out Retry-After on 429, backs off on 5xx and network errors, gives up on permanent errors', () => {
    expect(classifySlackError(e({ code: 'slack_webapi_rate_limited_error', retryAfter: 3 }), 1)).toMatchObject({ retry: true, rateLimited: true });
    expect((classifySlackError(e({ code: 'slack_webapi_rate_limited_error', retryAfter: 3 }), 1) as { delayMs: number }).delayMs).toBeGreaterThanOrEqual(3_000);
    expect(classifySlackError(e({ code: 'slack_webapi_http_error', statusCode: 503 }), 2)).toMatchObject({ retry: true });
    expect(classifySlackError(e({ code: 'slack_webapi_request_error' }), 2)).toMatchObject({ retry: true });
    expect(classifySlackError(e({ code: 'slack_webapi_platform_error', data: { error: 'internal_error' } }), 1)).toMatchObject({ retry: true });
    expect(classifySlackError(e({ code: 'slack_webapi_platform_error', data: { error: 'invalid_auth' } }), 1)).toMatchObject({ retry: true });
    expect(classifySlackError(e({ code: 'slack_webapi_platform_error', data: { error: 'channel_not_found' } }), 1)).toEqual({ retry: false, status: 'failed' });
    expect(classifySlackError(e({ code: 'slack_webapi_platform_error', data: { error: 'message_not_found' } }), 1)).toEqual({ retry: false, status: 'skipped' });
    expect(classifySlackError(e({ code: 'slack_webapi_http_error', statusCode: 400 }), 1)).toEqual({ retry: false, status: 'failed' });
  });
  it('backs off exponentially with a cap', () => {
    expect(outboxBackoff(1)).toBeLessThanOrEqual(600);
    expect(outboxBackoff(4)).toBeGreaterThanOrEqual(3_200);
    expect(outboxBackoff(50)).toBeLessThanOrEqual(72_000);
  });
});

describe('rendering', () => {
  const run: RunInfo = { id: 'r-1', playbook: 'pb', trigger: 'alert', startedBy: null, dryRun: true, alert: { summary: 'x < y & z' }, params: {}, createdAt: new Date(nowMs) };
  it('escapes text, mentions Slack actors, marks dry runs and drops buttons once decided', () => {
    expect(escapeText('<a> & b')).toBe('&lt;a&gt; &amp; b');
    expect(actorLabel('slack:U123')).toBe('<@U123>');
    expect(actorLabel('console:alice')).toBe('console:alice');
    const approval = { id: 'a-1', stepId: 's', round: 1, action: 'http.request', impact: 'high', params: { url: 'https://x' }, reasons: ['high impact'], approvers: ['group:sre'], minApprovals: 1, onTimeout: 'abort', expiresAt: null };
    const pending = renderApproval(run, approval, { kind: 'pending', votes: [] }, 'http://fb');
    expect(pending.text).toContain('[DRY RUN]');
    expect(JSON.stringify(pending.blocks)).toContain('firebreak_reject');
    expect(JSON.stringify(pending.blocks)).toContain('x &lt; y &amp; z');
    const decided = renderApproval(run, approval, { kind: 'approved', by: 'slack:U9', at: new Date(nowMs) }, 'http://fb');
    expect(JSON.stringify(decided.blocks)).not.toContain('firebreak_approve');
    expect(JSON.stringify(decided.blocks)).toContain('Approved* by <@U9> at 2026-11-22 12:00:00 UTC');
  });
  it('makes SLACK_API_URL end with a slash', () => {
    expect(slackApiUrl('http://127.0.0.1:1/api')).toBe('http://127.0.0.1:1/api/');
    expect(slackApiUrl('http://127.0.0.1:1/api/')).toBe('http://127.0.0.1:1/api/');
    expect(slackApiUrl(undefined)).toBeUndefined();
  });
});
