/**
 * Limits a payload or a sent playbook cannot get around: JSON nesting (a 400
 * before anything walks the body), the expression cost limit (the step fails,
 * the process keeps answering), and DATABASE_URL, which is checked and never
 * echoed with its password.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';

let db: TestDatabase;
let server: ServerProcess;
let password: string;

const deep = (depth: number, inner = '1') => `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;

beforeAll(async () => {
  db = await createTestDatabase();
  // A password in the URL (ignored by trust auth, or the real one): it must never be logged.
  const url = new URL(db.url);
  if (!url.password) url.password = 'pw-never-logged-4711';
  password = decodeURIComponent(url.password);
  const dir = await playbooksDir({ 'n.yaml': 'name: n\nsteps:\n  - id: a\n    action: note\n    with: { text: hi }\n' });
  server = await startServer({ DATABASE_URL: url.toString(), FIREBREAK_PLAYBOOKS: dir, LOG_LEVEL: 'debug' });
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

describe('JSON nesting', () => {
  it('answers 400 to a body nested 200,000 deep on every JSON endpoint, and keeps serving', async () => {
    const grafana = `{"receiver":"x","status":"firing","alerts":${deep(200_000)}}`;
    for (const [path, body] of [
      ['/hooks/grafana', grafana],
      ['/hooks/alertmanager', `{"version":"4","alerts":[{"labels":${deep(200_000, '{}')}}]}`],
      ['/hooks/generic', deep(65, '{}')],
      ['/api/runs', `{"dryRun":true,"params":{"x":${deep(1_000)}}}`],
    ] as const) {
      const res = await httpJson('POST', `${server.url}${path}`, body);
      expect(res.status, `${path}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.details[0]).toEqual({ path: '(body)', message: 'nested deeper than 64 levels of arrays and objects' });
    }
    // 64 levels is fine (and brackets inside strings do not count).
    const ok = await httpJson('POST', `${server.url}/api/runs`, `{"dryRun":true,"playbook":"n","params":{"s":"${'['.repeat(500)}","x":${deep(60)}}}`);
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    expect((await httpJson('GET', `${server.url}/healthz`)).status).toBe(200);
  });
});

describe('expression cost limit', () => {
  const exploding = {
    dryRun: true,
    playbook: 'explode',
    params: { big: 'x'.repeat(5_000) },
    playbooks: [
      {
        file: 'explode.yaml',
        source: [
          'name: explode',
          'steps:',
          '  - id: grow',
          '    action: note',
          '    on_failure: continue',
          '    when: \'"abcd".replace("a","aaaa").replace("a","aaaa").replace("a","aaaa").replace("a","aaaa").replace("a","aaaa").replace("a","aaaa").replace("a","aaaa").replace("a","aaaa").replace("a","aaaa").replace("a","aaaa").replace("a","aaaa").replace("a","aaaa").size() > 0\'',
          '    with: { text: never }',
          '  - id: boom',
          '    action: note',
          '    with:',
          // 25 million iterations over a parameter: minutes of CPU without a limit.
          '      text: "${{ run.params.big.split(\'\').map(a, run.params.big.split(\'\').map(b, a + b)).size() }}"',
          '',
        ].join('\n'),
      },
    ],
  };

  it('fails the step with a clear error while the server keeps answering', async () => {
    const res = await httpJson('POST', `${server.url}/api/runs`, exploding);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const runId = res.body.items[0].id;
    // While the run is being driven, health checks keep coming back; a stalled event loop would hold them for minutes.
    const health: number[] = [];
    const run = await eventually(async () => {
      const started = Date.now();
      expect((await httpJson('GET', `${server.url}/healthz`)).status).toBe(200);
      health.push(Date.now() - started);
      const r = await httpJson('GET', `${server.url}/api/runs/${runId}`);
      return ['succeeded', 'failed'].includes(r.body.status) ? r.body : undefined;
    }, 60_000, 20);
    expect(health.length).toBeGreaterThan(0);
    // A generous bound: this guards against a stall of minutes, not a slow box.
    expect(Math.max(...health)).toBeLessThan(5_000);
    expect(run.status).toBe('failed');
    const tl = await httpJson('GET', `${server.url}/api/runs/${runId}/timeline`);
    const failed = tl.body.events.filter((e: any) => e.kind === 'step.failed');
    expect(failed.map((e: any) => e.data.stepId)).toEqual(['grow', 'boom']);
    for (const f of failed) expect(f.data.error.message).toMatch(/expression exceeded its cost limit/);
  });

  it('stops macros nested six deep at run time (a sent playbook validates, then its step fails)', async () => {
    const ten = '[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]';
    const nested = `${ten}.map(a, ${ten}.map(b, ${ten}.map(c, ${ten}.map(d, ${ten}.map(e, ${ten}.map(f, a + f)))))).size() > 0`;
    const res = await httpJson('POST', `${server.url}/api/runs`, {
      dryRun: true,
      playbook: 'nest',
      playbooks: [{ file: 'nest.yaml', source: `name: nest\nsteps:\n  - id: a\n    action: note\n    when: '${nested}'\n    with: { text: x }\n` }],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const run = await eventually(async () => {
      const r = await httpJson('GET', `${server.url}/api/runs/${res.body.items[0].id}`);
      return ['succeeded', 'failed'].includes(r.body.status) ? r.body : undefined;
    });
    expect(run.status).toBe('failed');
    const tl = await httpJson('GET', `${server.url}/api/runs/${run.id}/timeline`);
    expect(tl.body.events.find((e: any) => e.kind === 'step.failed').data.error.message).toMatch(/when: .*expression exceeded its cost limit/);
  });
});

describe('DATABASE_URL', () => {
  it('is never written to the log with its password', () => {
    expect(server.logs()).not.toContain(password);
    expect(server.logs()).not.toContain(encodeURIComponent(password));
  });

  it('refuses unknown schemes and bad URLs at start-up, naming the variable and masking the password', async () => {
    for (const url of ['mysql://bob:hunter2secret@db.example/x', 'postgres://bob:hunter2secret@db.example:99999/x', 'postgres://bob:hunter2%zzsecret@db.example/x', 'host=db.example password=hunter2secret']) {
      const { code, stdout, stderr } = await runCli(['serve'], { DATABASE_URL: url, PORT: '0' });
      expect(code, url).toBe(1);
      expect(stderr, url).toMatch(/^\s*DATABASE_URL: /m);
      expect(stdout + stderr, url).not.toContain('hunter2');
    }
  });

  it('masks the password in connection errors', async () => {
    const { code, stdout, stderr } = await runCli(['audit', 'verify'], { DATABASE_URL: 'postgres://bob:hunter2secret@127.0.0.1:1/x' });
    expect(code).toBe(1);
    expect(stderr).toMatch(/database unavailable/);
    expect(stdout + stderr).not.toContain('hunter2');
  });
});
