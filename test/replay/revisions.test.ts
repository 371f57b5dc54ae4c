/**
 * Playbook revisions (PRODUCT.md "Playbook changes"): every content the
 * server loads is a revision; a run keeps the revision it started with, so
 * editing the file while a run waits for approval changes nothing about that
 * run; the API lists playbooks and their history, and the console shows a
 * run's revision and what changed since.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { genericAlert, playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';

let db: TestDatabase;
let server: ServerProcess;
let dir: string;

const V1 = `# version one
name: change-demo
description: a change that needs an approval, then a note
triggers:
  - source: generic
    matchers: ['alertname="ChangeDemo"']
steps:
  - id: change
    action: note
    impact: high
    with: { text: "changing" }
  - id: after
    action: note
    with: { text: "old text" }
`;

const V2 = V1.replace('# version one', '# version two').replace('"old text"', '"new text"') + `  - id: extra
    action: note
    with: { text: "a step added later" }
`;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await playbooksDir({ 'change-demo.yaml': V1 });
  server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir });
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

const api = (path: string) => httpJson('GET', `${server.url}${path}`);

async function fire(): Promise<string> {
  const res = await httpJson('POST', `${server.url}/hooks/generic`, genericAlert({ alertname: 'ChangeDemo', service: 'web' }, { fingerprint: `fp-${Math.random()}` }));
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.runs[0];
}

const waitingApproval = (runId: string) =>
  eventually(async () => {
    const run = (await api(`/api/runs/${runId}`)).body;
    return run.status === 'waiting' && run.approvals.find((a: any) => a.status === 'pending');
  });

let v1: string;
let v2: string;
let oldRun: string;

describe('revisions', () => {
  it('GET /api/playbooks lists each playbook with its current revision', async () => {
    const res = await api('/api/playbooks');
    expect(res.status).toBe(200);
    const item = res.body.items.find((p: any) => p.name === 'change-demo');
    expect(item).toMatchObject({ name: 'change-demo', file: join(dir, 'change-demo.yaml'), limits: null, triggers: [{ source: 'generic', matchers: ['alertname="ChangeDemo"'] }] });
    expect(item.revision).toMatch(/^[0-9a-f]{64}$/);
    expect(item.steps.map((s: any) => s.id)).toEqual(['change', 'after']);
    v1 = item.revision;
    // Loaded is enough to be a revision: no run has used it yet.
    const revisions = await api('/api/playbooks/change-demo/revisions');
    expect(revisions.body.items).toEqual([expect.objectContaining({ hash: v1, current: true, runs: 0, file: join(dir, 'change-demo.yaml') })]);
  });

  it('an edit while a run waits for approval does not change that run', async () => {
    oldRun = await fire();
    const approval = await waitingApproval(oldRun);
    expect((await api(`/api/runs/${oldRun}`)).body.revision).toBe(v1);

    await writeFile(join(dir, 'change-demo.yaml'), V2);
    v2 = await eventually(async () => {
      const item = (await api('/api/playbooks')).body.items.find((p: any) => p.name === 'change-demo');
      return item.revision !== v1 && item.revision;
    });

    const answered = await httpJson('POST', `${server.url}/api/approvals/${approval.id}`, { decision: 'approve', user: 'alice' });
    expect(answered.status, JSON.stringify(answered.body)).toBe(200);
    const run = await eventually(async () => {
      const r = (await api(`/api/runs/${oldRun}`)).body;
      return r.status === 'succeeded' && r;
    });
    // The old steps, the old text, the old revision: nothing of the edit.
    expect(run.revision).toBe(v1);
    expect(run.steps.map((s: any) => s.id)).toEqual(['change', 'after']);
    expect(run.steps.find((s: any) => s.id === 'after').output.text).toBe('old text');
    const created = (await api(`/api/runs/${oldRun}/timeline`)).body.events.find((e: any) => e.kind === 'run.created');
    expect(created.data.revision).toBe(v1);

    // A run started after the edit executes the new revision.
    const newRun = await fire();
    await httpJson('POST', `${server.url}/api/approvals/${(await waitingApproval(newRun)).id}`, { decision: 'approve', user: 'alice' });
    const fresh = await eventually(async () => {
      const r = (await api(`/api/runs/${newRun}`)).body;
      return r.status === 'succeeded' && r;
    });
    expect(fresh.revision).toBe(v2);
    expect(fresh.steps.map((s: any) => s.id)).toEqual(['change', 'after', 'extra']);
  });

  it('GET /api/playbooks/:name/revisions is the history, newest first; a revision diffs against the current one', async () => {
    const list = (await api('/api/playbooks/change-demo/revisions')).body.items;
    expect(list.map((r: any) => [r.hash, r.current, r.runs])).toEqual([
      [v2, true, 1],
      [v1, false, 1],
    ]);
    expect(Date.parse(list[0].firstSeenAt)).toBeGreaterThanOrEqual(Date.parse(list[1].firstSeenAt));

    const old = (await api(`/api/playbooks/change-demo/revisions/${v1.slice(0, 10)}`)).body;
    expect(old.hash).toBe(v1);
    expect(old.source).toBe(V1);
    expect(old.definition.steps.map((s: any) => s.id)).toEqual(['change', 'after']);
    expect(old.diff.against).toBe(v2);
    expect(old.diff.unified).toContain('-# version one');
    expect(old.diff.unified).toContain('+# version two');
    expect(old.diff.unified).toContain('-    with: { text: "old text" }');
    expect(old.diff.unified).toContain('+  - id: extra');

    expect((await api('/api/playbooks/nope/revisions')).status).toBe(404);
    expect((await api('/api/playbooks/change-demo/revisions/zzzz')).status).toBe(404);
  });

  it('the console shows a run’s revision and its diff to the current one', async () => {
    const page = (await httpJson('GET', `${server.url}/runs/${oldRun}`)).body as string;
    expect(page).toContain(v1.slice(0, 12));
    expect(page).toContain('the playbook has changed since');
    expect(page).toMatch(/<span class="diff-del">-    with: \{ text: &quot;old text&quot; \}<\/span>/);
    expect(page).toMatch(/<span class="diff-add">\+  - id: extra<\/span>/);
  });

  it('firebreak playbooks and firebreak revisions print the same', async () => {
    const env = { FIREBREAK_URL: server.url };
    const playbooks = await runCli(['playbooks'], env);
    expect(playbooks.code, playbooks.stderr).toBe(0);
    expect(playbooks.stdout).toMatch(new RegExp(`change-demo\\s+${v2.slice(0, 12)}\\s+3`));
    const revisions = await runCli(['revisions', 'change-demo'], env);
    expect(revisions.stdout.split('\n')[1]).toMatch(new RegExp(`^${v2.slice(0, 12)}.*current$`));
    expect(revisions.stdout).toContain(v1.slice(0, 12));
    const diff = await runCli(['revisions', 'change-demo', '--diff', v1.slice(0, 12)], env);
    expect(diff.stdout).toContain('+  - id: extra');
    expect(await readFile(join(dir, 'change-demo.yaml'), 'utf8')).toBe(V2);
  });
});
