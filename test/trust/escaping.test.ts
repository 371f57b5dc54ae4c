/**
 * Alert content cannot steer a step: a label lands in a URL path segment, a
 * PromQL string or a number slot, and is escaped (or refused) for exactly
 * that place. Real HTTP servers stand in for the deploy API and Prometheus
 * and record the raw request line they got.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';

interface Seen {
  rawUrl: string;
  path: string;
  query: string | null;
  authorization: string | undefined;
}

/**
 * PromQL with its string literals and comments removed, as the Prometheus
 * lexer would see the code around them (enough to tell an injected operator).
 */
function promqlCode(query: string): string {
  let out = '';
  for (let i = 0; i < query.length; i++) {
    const c = query[i]!;
    if (c === '"' || c === "'" || c === '`') {
      for (i++; i < query.length && query[i] !== c; i++) if (query[i] === '\\' && c !== '`') i++;
      out += '""';
    } else if (c === '#') {
      while (i < query.length && query[i] !== '\n') i++;
    } else out += c;
  }
  return out;
}

/** Deploy API and Prometheus on one port. Prometheus "evaluates" to 1 only when the query's code (not its strings) says `vector(1)`. */
async function startStandIns(): Promise<{ url: string; host: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    seen.push({ rawUrl: req.url ?? '', path: url.pathname, query: url.searchParams.get('query'), authorization: req.headers.authorization });
    res.writeHead(200, { 'content-type': 'application/json' });
    if (url.pathname === '/prom/api/v1/query') {
      const value = promqlCode(url.searchParams.get('query') ?? '').includes('vector(1)') ? '1' : '0';
      res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [Date.now() / 1000, value] }] } }));
    } else res.end(JSON.stringify({ ok: true, path: url.pathname }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    seen,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

const steer = (base: string) => `
name: steer
triggers:
  - matchers: ['alertname="Steer"']
steps:
  - id: look
    action: http.request
    on_failure: continue
    with:
      url: "${base}/look/\${{ alert.labels.service }}?team=\${{ alert.labels.team }}"
      headers: { Authorization: "Bearer \${{ secrets.DEPLOY_TOKEN }}" }
  - id: error_rate
    action: prometheus.query
    with:
      url: "${base}/prom"
      query: 'sum(rate(http_requests_total{service="\${{ alert.labels.service }}",code=~"\${{ alert.labels.codes }}"}[5m]))'
  - id: threshold
    action: prometheus.query
    on_failure: continue
    with:
      url: "${base}/prom"
      query: 'up > \${{ alert.labels.threshold }}'
  - id: rollback
    action: note
    when: steps.error_rate.output.value != null && steps.error_rate.output.value > 0.5
    with: { text: "rolled back" }
`;

let db: TestDatabase;
let standIns: Awaited<ReturnType<typeof startStandIns>>;
let server: ServerProcess;

beforeAll(async () => {
  [db, standIns] = await Promise.all([createTestDatabase(), startStandIns()]);
  const dir = await playbooksDir({ 'steer.yaml': steer(standIns.url) });
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_HTTP_ALLOW: standIns.host, FIREBREAK_SECRET_DEPLOY_TOKEN: 'deploy-tok-123456' });
});

afterAll(async () => {
  await server?.stop();
  await standIns?.close();
  await db?.drop();
});

async function fire(labels: Record<string, string>): Promise<any> {
  const res = await httpJson('POST', `${server.url}/hooks/generic`, { labels: { alertname: 'Steer', ...labels } });
  expect(res.status).toBe(202);
  const runId = res.body.runs[0];
  return eventually(async () => {
    const r = await httpJson('GET', `${server.url}/api/runs/${runId}`);
    return ['succeeded', 'failed', 'aborted'].includes(r.body.status) ? r.body : undefined;
  }, 30_000);
}

const stepStatus = (run: any, id: string) => run.steps.find((s: any) => s.id === id)?.status;

describe('a label in a URL', () => {
  it('stays one path segment and one query value: ../../admin?x= does not reach /admin', async () => {
    const before = standIns.seen.length;
    const run = await fire({ service: '../../admin?x=', team: 'a&admin=1#frag', codes: '5..', threshold: '0' });
    const calls = standIns.seen.slice(before).filter((s) => !s.path.startsWith('/prom'));
    expect(calls).toHaveLength(1);
    expect(calls[0]!.rawUrl).toBe('/look/..%2F..%2Fadmin%3Fx%3D?team=a%26admin%3D1%23frag');
    expect(calls[0]!.path).toBe('/look/..%2F..%2Fadmin%3Fx%3D');
    expect(standIns.seen.some((s) => s.path === '/admin')).toBe(false);
    expect(stepStatus(run, 'look')).toBe('succeeded');
  });

  it('cannot be a whole "." or ".." segment: the step fails and nothing is called', async () => {
    const before = standIns.seen.length;
    const run = await fire({ service: '..', team: 't', codes: '5..', threshold: '0' });
    expect(stepStatus(run, 'look')).toBe('failed');
    const tl = await httpJson('GET', `${server.url}/api/runs/${run.id}/timeline`);
    const failed = tl.body.events.find((e: any) => e.kind === 'step.failed' && e.data.stepId === 'look');
    expect(failed.data.error.message).toMatch(/"\." or "\.\." segment/);
    expect(standIns.seen.slice(before).filter((s) => !s.path.startsWith('/prom'))).toHaveLength(0);
  });
});

describe('a label in a PromQL query', () => {
  it('stays inside its string literal: a quote cannot add `or vector(1)` and satisfy when:', async () => {
    const label = 'x"}[5m])) * 0 or vector(1) # ';
    const before = standIns.seen.length;
    const run = await fire({ service: label, team: 't', codes: '5..|.*', threshold: '0' });
    const query = standIns.seen.slice(before).find((s) => s.path === '/prom/api/v1/query' && s.query?.startsWith('sum('))!.query!;
    expect(query).toBe('sum(rate(http_requests_total{service="x\\"}[5m])) * 0 or vector(1) # ",code=~"5\\\\.\\\\.\\\\|\\\\.\\\\*"}[5m]))');
    expect(promqlCode(query)).not.toContain('vector(1)');
    expect(stepStatus(run, 'error_rate')).toBe('succeeded');
    expect(stepStatus(run, 'rollback')).toBe('skipped');
  });

  it('outside a string literal must be a number: anything else fails the step before Prometheus is asked', async () => {
    const before = standIns.seen.length;
    const run = await fire({ service: 'api', team: 't', codes: '5..', threshold: '0 or vector(1)' });
    expect(stepStatus(run, 'threshold')).toBe('failed');
    expect(standIns.seen.slice(before).filter((s) => s.query?.startsWith('up'))).toHaveLength(0);
    const tl = await httpJson('GET', `${server.url}/api/runs/${run.id}/timeline`);
    const failed = tl.body.events.find((e: any) => e.kind === 'step.failed' && e.data.stepId === 'threshold');
    expect(failed.data.error.message).toMatch(/outside a PromQL string literal must be a number/);

    const ok = await fire({ service: 'api', team: 't', codes: '5..', threshold: '0.25' });
    expect(stepStatus(ok, 'threshold')).toBe('succeeded');
    expect(standIns.seen.some((s) => s.query === 'up > 0.25')).toBe(true);
  });
});

describe('firebreak validate', () => {
  const write = (body: string) => playbooksDir({ 'p.yaml': `name: p\nsteps:\n${body}` });

  it('warns about unescaped() (exit 0) and names where it is', async () => {
    const dir = await write(
      `  - id: a\n    action: http.request\n    with:\n      url: "https://h.example/\${{ unescaped(alert.labels.path) }}"\n  - id: b\n    action: slack.message\n    with:\n      text: "\${{ unescaped(alert.annotations.summary) }}"\n`,
    );
    const { code, stdout, stderr } = await runCli(['validate', dir], {});
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/p\.yaml:6: warning: steps\[0\]\.with\.url: \$\{\{ unescaped\(alert\.labels\.path\) \}\}: unescaped\(\) turns off url escaping/);
    expect(stdout).toMatch(/p\.yaml:10: warning: steps\[1\]\.with\.text: .*turns off mrkdwn escaping/);
    expect(stdout).toMatch(/valid \(2 warnings\)/);
  });

  it('refuses secrets used as anything but a whole value, a URL that starts with ${{ }}, and a PromQL raw string', async () => {
    const dir = await write(
      [
        '  - id: a',
        '    action: http.request',
        '    with:',
        '      url: "${{ alert.labels.base }}/x"',
        '      headers: { X-A: "${{ bytes(secrets.TOK) }}", X-B: "${{ secrets.TOK.upperAscii() }}", X-C: "Bearer ${{ secrets.TOK }}" }',
        '  - id: b',
        '    action: prometheus.query',
        '    when: secrets.TOK == "x"',
        '    with:',
        '      url: https://prom.example',
        '      query: "up{job=`${{ alert.labels.job }}`}"',
        '',
      ].join('\n'),
    );
    const { code, stdout } = await runCli(['validate', dir], {});
    expect(code).toBe(1);
    const lines = stdout.trim().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(/^.*p\.yaml:6: steps\[0\]\.with\.url: .*cannot start a URL/),
      expect.stringMatching(/^.*p\.yaml:7: steps\[0\]\.with\.headers\.X-A: \$\{\{ bytes\(secrets\.TOK\) \}\}: secrets can only be interpolated whole/),
      expect.stringMatching(/^.*p\.yaml:7: steps\[0\]\.with\.headers\.X-B: .*secrets can only be interpolated whole/),
      expect.stringMatching(/^.*p\.yaml:10: steps\[1\]\.when: secrets can only be interpolated whole/),
      expect.stringMatching(/^.*p\.yaml:13: steps\[1\]\.with\.query: .*PromQL raw or multi-line string/),
    ]);
  });
});
