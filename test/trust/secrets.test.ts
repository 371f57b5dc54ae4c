/**
 * Secrets never leave the process in clear: a run whose steps carry a secret
 * in a URL (path and query, so percent-encoded), in headers, in a note and in
 * a failing request's error is searched for in every row of every table, in
 * every API answer and in the server's log, in every encoding a request path
 * produces. Playbooks sent with a dry-run request get no secrets at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, startServer, type ServerProcess } from '../helpers/server.js';
import { startTarget, type Target } from '../helpers/target.js';

// Characters that URL encoders, form encoders and JSON each write differently.
const SECRET = 'Tok/en+Secr3t=Value&x y;é';

/** Every form the secret could take on its way to a table, an answer or a log line. */
function encodings(secret: string): string[] {
  const forms = new Set<string>([
    secret,
    encodeURIComponent(secret),
    encodeURI(secret),
    new URLSearchParams({ s: secret }).toString().slice(2),
    JSON.stringify(secret).slice(1, -1),
    Buffer.from(secret).toString('base64'),
    Buffer.from(secret).toString('base64url'),
  ]);
  for (const f of [...forms]) forms.add(f.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()));
  // A distinctive part of the secret is enough to count as a leak.
  forms.add('Secr3t');
  return [...forms];
}

function leaks(where: string, text: string): string[] {
  return encodings(SECRET)
    .filter((form) => text.includes(form))
    .map((form) => `${where} contains ${JSON.stringify(form)}`);
}

let db: TestDatabase;
let target: Target;
let server: ServerProcess;

const leaky = (base: string) => `
name: leaky
triggers:
  - matchers: ['alertname="Leak"']
steps:
  - id: note
    action: note
    with: { text: "token is \${{ secrets.TOK }}", data: { token: "\${{ secrets.TOK }}" } }
  - id: in_url
    action: http.request
    on_failure: continue
    retry: { attempts: 2, backoff: 100ms }
    with:
      url: "${base}/fail/\${{ secrets.TOK }}/x?token=\${{ secrets.TOK }}"
  - id: in_header
    action: http.request
    on_failure: continue
    with:
      url: "${base}/fail/header"
      headers: { Authorization: "Bearer \${{ secrets.TOK }}", X-Token: "\${{ secrets.TOK }}" }
  - id: mutate
    action: http.request
    with:
      method: POST
      url: "${base}/ok/\${{ secrets.TOK }}"
      headers: { X-Token: "\${{ secrets.TOK }}" }
      body: { token: "\${{ secrets.TOK }}" }
  - id: final
    action: http.request
    with:
      url: "${base}/fail/\${{ secrets.TOK }}"
`;

beforeAll(async () => {
  [db, target] = await Promise.all([createTestDatabase(), startTarget()]);
  // A target that fails and echoes what it got (headers included), as many error pages do.
  target.respond('/fail/header', (call) => ({ status: 500, body: { echo: call.headers } }));
  for (const path of [`/fail/${encodeURIComponent(SECRET)}/x`, `/fail/${encodeURIComponent(SECRET)}`]) {
    target.respond(path, (call) => ({ status: 502, body: { error: `upstream refused ${call.path}`, token: call.headers['x-token'] ?? null } }));
  }
  const dir = await playbooksDir({ 'leaky.yaml': leaky(target.url) });
  server = await startServer({
    DATABASE_URL: db.url,
    FIREBREAK_PLAYBOOKS: dir,
    FIREBREAK_HTTP_ALLOW: target.host,
    FIREBREAK_SECRET_TOK: SECRET,
    LOG_LEVEL: 'debug',
  });
});

afterAll(async () => {
  await server?.stop();
  await target?.close();
  await db?.drop();
});

async function finished(runId: string): Promise<any> {
  return eventually(async () => {
    const r = await httpJson('GET', `${server.url}/api/runs/${runId}`);
    return ['succeeded', 'failed', 'aborted'].includes(r.body.status) ? r.body : undefined;
  }, 30_000);
}

describe('a run that carries a secret in URLs, headers, outputs and errors', () => {
  it('really sends the secret to the allowed target, percent-encoded in the URL', async () => {
    const fired = await httpJson('POST', `${server.url}/hooks/generic`, { labels: { alertname: 'Leak', service: 'x' } });
    expect(fired.status).toBe(202);
    const run = await finished(fired.body.runs[0]);
    expect(run.status).toBe('failed');
    expect(run.steps.map((s: any) => [s.id, s.status])).toEqual([
      ['note', 'succeeded'],
      ['in_url', 'failed'],
      ['in_header', 'failed'],
      ['mutate', 'succeeded'],
      ['final', 'failed'],
    ]);
    // The secret is for the target: it gets it, in the form its position needs.
    const header = target.calls.find((c) => c.path === '/fail/header')!;
    expect(header.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(target.calls.some((c) => c.path === `/fail/${encodeURIComponent(SECRET)}/x`)).toBe(true);
  });

  it('stores it in no row of any table, in any encoding', async () => {
    // A dry run too: its "would call" captures are stored.
    const dry = await httpJson('POST', `${server.url}/api/runs`, { dryRun: true, playbook: 'leaky' });
    expect(dry.status, JSON.stringify(dry.body)).toBe(201);
    const dryRun = await finished(dry.body.id);
    const tl = await httpJson('GET', `${server.url}/api/runs/${dryRun.id}/timeline`);
    expect(tl.body.events.some((e: any) => e.kind === 'step.would_call' && e.data.stepId === 'mutate')).toBe(true);

    const tables = await db.pool.query<{ table_name: string }>(`select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`);
    expect(tables.rows.length).toBeGreaterThan(5);
    const found: string[] = [];
    let rows = 0;
    for (const { table_name } of tables.rows) {
      const res = await db.pool.query<{ row: string }>(`select row_to_json(t)::text as row from ${table_name} t`);
      rows += res.rowCount ?? 0;
      for (const r of res.rows) found.push(...leaks(table_name, r.row));
    }
    expect(rows).toBeGreaterThan(20);
    expect(found).toEqual([]);
    // The redaction marker is where the secret was.
    const errors = await db.pool.query<{ error: string }>(`select error::text from run_steps where error is not null`);
    expect(errors.rows.some((r) => r.error.includes('[redacted]'))).toBe(true);
  });

  it('serves it in no API answer and writes it to no log line', async () => {
    const runs = await httpJson('GET', `${server.url}/api/runs`);
    const answers: Array<[string, string]> = [['GET /api/runs', JSON.stringify(runs.body)]];
    for (const run of runs.body.items) {
      for (const path of [`/api/runs/${run.id}`, `/api/runs/${run.id}/timeline`, `/api/runs/${run.id}/timeline?format=json`, `/api/runs/${run.id}/timeline?format=md`]) {
        const res = await httpJson('GET', `${server.url}${path}`);
        expect(res.status).toBe(200);
        answers.push([`GET ${path}`, typeof res.body === 'string' ? res.body : JSON.stringify(res.body)]);
      }
    }
    for (const path of ['/api/alerts', '/api/approvals']) answers.push([`GET ${path}`, JSON.stringify((await httpJson('GET', `${server.url}${path}`)).body)]);
    const failed = runs.body.items.find((r: any) => r.status === 'failed');
    expect(JSON.stringify(failed)).toContain('[redacted]');
    expect(answers.flatMap(([where, text]) => leaks(where, text))).toEqual([]);
    expect(leaks('the server log', server.logs())).toEqual([]);
    // The log did talk about these steps (debug level), so this is not an empty search.
    expect(server.logs().length).toBeGreaterThan(200);
  });
});

describe('a playbook sent with a dry-run request', () => {
  const sent = (body: string) => ({
    dryRun: true,
    playbook: 'sent-probe',
    playbooks: [{ file: 'sent.yaml', source: `name: sent-probe\nsteps:\n${body}` }],
  });

  it('cannot compute with a secret: bytes(), methods and comparisons are refused, naming file and line', async () => {
    for (const expr of ['bytes(secrets.TOK)', 'secrets.TOK.upperAscii()', 'secrets.TOK + ""', 'size(secrets.TOK) > 3', 'secrets']) {
      const res = await httpJson('POST', `${server.url}/api/runs`, sent(`  - id: probe\n    action: http.request\n    with:\n      url: "${target.url}/probe"\n      headers: { X-Probe: "\${{ ${expr} }}" }\n`));
      expect(res.status, expr).toBe(400);
      expect(JSON.stringify(res.body.details), expr).toMatch(/sent\.yaml:\d+: .*secrets can only be interpolated whole/);
    }
    expect(target.calls.filter((c) => c.path === '/probe')).toHaveLength(0);
  });

  it('gets no secret values: a whole ${{ secrets.NAME }} renders as a marker, and the run says so', async () => {
    const res = await httpJson(
      'POST',
      `${server.url}/api/runs`,
      sent(`  - id: probe\n    action: http.request\n    with:\n      url: "${target.url}/probe?t=\${{ secrets.TOK }}"\n      headers: { Authorization: "Bearer \${{ secrets.TOK }}" }\n`),
    );
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    // Sent playbooks answer in the replay shape: one item per run started.
    const run = await finished(res.body.items[0].id);
    expect(run.status).toBe('succeeded');
    expect(run.dryRunOptions.secrets).toMatch(/withheld/);
    // A GET is a gather step: it really ran, against an allowed host, without the secret.
    const probe = target.calls.filter((c) => c.path === '/probe');
    expect(probe).toHaveLength(1);
    expect(probe[0]!.headers.authorization).toBe('Bearer [withheld secret TOK]');
    expect(leaks('the probe', JSON.stringify(probe[0]))).toEqual([]);
    const tl = await httpJson('GET', `${server.url}/api/runs/${run.id}/timeline`);
    expect(JSON.stringify(tl.body.events[0].data)).toMatch(/withheld/);
  });
});
