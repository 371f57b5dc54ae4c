/**
 * Safe playbook changes (PRODUCT.md "Playbook changes"), end to end: real
 * sample alerts posted to a real server, their runs approved and finished;
 * then a copy of the playbooks folder is replayed against those recorded
 * episodes (`firebreak replay --since 1h --expect-same`) and tested
 * (`firebreak test`): unchanged, both pass; with the rollback URL changed,
 * both exit 1 naming the difference.
 */
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminUrl, createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { httpJson, ROOT, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { FINISHED, samplePlaybooks, settled, startWorld, timeline, type World } from './helpers.js';

let db: TestDatabase;
let server: ServerProcess;
let world: World;
let dir: string;

const ALERTS = join(ROOT, 'examples', 'alerts');
const DEPLOY_TOKEN = 'deploy-tok-9e1d44a0c2';
const recorded: Record<string, string> = {};

beforeAll(async () => {
  db = await createTestDatabase();
  world = await startWorld();
  ({ dir } = await samplePlaybooks(world));
  server = await startServer({
    DATABASE_URL: db.url,
    FIREBREAK_PLAYBOOKS: dir,
    FIREBREAK_HTTP_ALLOW: world.hosts.join(','),
    FIREBREAK_SECRET_DEPLOY_TOKEN: DEPLOY_TOKEN,
    FIREBREAK_SECRET_K8S_TOKEN: 'k8s-tok-77',
  });
  // Real alerts, real runs: high-error-rate's rollback is approved; pod-crash-looping's restart too.
  for (const file of ['high-error-rate.json', 'pod-crash-looping.json']) {
    const fired = await httpJson('POST', `${server.url}/hooks/alertmanager`, await readFile(join(ALERTS, file), 'utf8'));
    expect(fired.status).toBe(202);
    recorded[file] = fired.body.runs[0];
    for (let i = 0; i < 5; i++) {
      const run = await settled(server.url, recorded[file]!, 45_000);
      if (FINISHED.includes(run.status)) break;
      for (const a of run.approvals.filter((x: any) => x.status === 'pending')) {
        const res = await httpJson('POST', `${server.url}/api/approvals/${a.id}`, { decision: 'approve', user: 'alice' });
        expect(res.status, JSON.stringify(res.body)).toBe(200);
      }
    }
  }
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await world?.close();
  await db?.drop();
});

const cli = (args: string[]) => runCli(args, { FIREBREAK_URL: server.url });

async function copyOf(source: string): Promise<string> {
  const copy = await mkdtemp(join(tmpdir(), 'fb-changed-'));
  await cp(source, copy, { recursive: true });
  return copy;
}

describe('firebreak replay --since against recorded episodes', () => {
  it('the recorded runs finished as approved', async () => {
    const run = (await httpJson('GET', `${server.url}/api/runs/${recorded['high-error-rate.json']}`)).body;
    expect(run.status).toBe('succeeded');
    expect(run.steps.find((s: any) => s.id === 'rollback').status).toBe('succeeded');
  });

  it('an unchanged folder replays the same: exit 0 with --expect-same', async () => {
    const before = world.sideEffects().length;
    // No --as: in local mode the CLI needs no name for a dry run.
    const res = await cli(['replay', '--since', '1h', '--playbooks', await copyOf(dir), '--expect-same']);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain('high-error-rate: recorded run');
    expect(res.stdout).not.toContain('DIFFERS');
    expect(res.stderr).toMatch(/\[1\/2\] episode/);
    expect(res.stderr).toContain('2 episode(s) replayed');
    // A replay changes nothing in the world.
    expect(world.sideEffects().length).toBe(before);
  });

  it('the replays answered the approval as it was answered, as `replay`, and never waited', async () => {
    const runs = (await httpJson('GET', `${server.url}/api/runs?limit=50`)).body.items.filter((r: any) => r.dryRun && r.playbook === 'high-error-rate');
    expect(runs.length).toBeGreaterThan(0);
    const t = await timeline(server.url, runs[0].id);
    const granted = t.events.find((e: any) => e.kind === 'approval.granted');
    expect(granted.actor).toBe('replay');
    expect(granted.data.reason).toContain(`recorded run ${recorded['high-error-rate.json']}`);
    expect(granted.data.reason).toContain('by local:alice');
    expect(JSON.stringify(t)).not.toContain(DEPLOY_TOKEN);
  });

  it('a changed rollback URL: exit 1, naming the step and both URLs', async () => {
    const changed = await copyOf(dir);
    const file = join(changed, 'high-error-rate.yaml');
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('/api/services/${{ alert.labels.service }}/rollback', '/api/v2/services/${{ alert.labels.service }}/rollback'));
    const res = await cli(['replay', '--since', '1h', '--playbooks', changed, '--expect-same', '--as', 'dana']);
    expect(res.code, res.stdout + res.stderr).toBe(1);
    expect(res.stdout).toContain('DIFFERS');
    expect(res.stdout).toContain('step rollback: rendered request differs');
    expect(res.stdout).toContain(`${world.a}/deploy/api/services/checkout/rollback`);
    expect(res.stdout).toContain(`${world.a}/deploy/api/v2/services/checkout/rollback`);
    expect(res.stderr).toContain('--expect-same');
    // --playbooks defaults to FIREBREAK_PLAYBOOKS.
    const byEnv = await runCli(['replay', '--since', '1h', '--expect-same'], { FIREBREAK_URL: server.url, FIREBREAK_PLAYBOOKS: changed });
    expect(byEnv.code, byEnv.stderr).toBe(1);
    expect(byEnv.stdout).toContain('step rollback: rendered request differs');
    // Without --expect-same the same differences are printed, and the exit is 0.
    const report = await cli(['replay', '--since', '1h', '--playbooks', changed, '--as', 'dana']);
    expect(report.code).toBe(0);
    expect(report.stdout).toContain('step rollback: rendered request differs');
  });
});

describe('what a replay reports', () => {
  it('a playbook that no longer matches, a when: that now skips the rollback, a decision that changed', async () => {
    const changed = await copyOf(dir);
    const pod = join(changed, 'pod-crash-looping.yaml');
    await writeFile(pod, (await readFile(pod, 'utf8')).replace('alertname="KubePodCrashLooping"', 'alertname="KubePodCrashLoopingV2"'));
    const her = join(changed, 'high-error-rate.yaml');
    await writeFile(her, (await readFile(her, 'utf8')).replace(
      'when: steps.error_rate.output.value != null && steps.error_rate.output.value > 0.05\n    with:\n      method: POST',
      'when: steps.error_rate.output.value != null && steps.error_rate.output.value > 0.5\n    with:\n      method: POST',
    ).replace('  - id: tell_channel\n    action: slack.message\n', '  - id: tell_channel\n    action: slack.message\n    impact: high\n    approval: never\n'));
    const res = await cli(['replay', '--since', '1h', '--playbooks', changed, '--expect-same', '--json']);
    expect(res.code, res.stderr).toBe(1);
    const report = JSON.parse(res.stdout);
    expect(report.differing).toBe(2);
    const byPlaybook = Object.fromEntries(report.episodes.flatMap((e: any) => e.pairs.map((p: any) => [p.playbook, p])));
    expect(byPlaybook['pod-crash-looping']).toMatchObject({ recorded: recorded['pod-crash-looping.json'], replay: null, divergences: null });
    const divergences = byPlaybook['high-error-rate'].divergences;
    expect(divergences).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ stepId: 'rollback', kind: 'outcome', a: 'taken', b: expect.stringContaining('skipped (when: steps.error_rate.output.value != null && steps.error_rate.output.value > 0.5)') }),
        expect.objectContaining({ stepId: 'tell_channel', kind: 'decision' }),
      ]),
    );
    const text = await cli(['replay', '--since', '1h', '--playbooks', changed]);
    expect(text.stdout).toContain('pod-crash-looping: run');
    expect(text.stdout).toContain('no run would start');
    expect(text.stdout).toContain('step rollback: taken/skipped differs');
    expect(text.stdout).toContain('step tell_channel: policy decision differs');
  });
});

describe('the API under replay', () => {
  it('GET /api/alerts?since= takes a duration or a time, and refuses anything else', async () => {
    const recent = await httpJson('GET', `${server.url}/api/alerts?since=1h`);
    expect(recent.status).toBe(200);
    expect(recent.body.items.length).toBe(2);
    expect((await httpJson('GET', `${server.url}/api/alerts?since=2999-01-01T00:00:00Z`)).body.items).toEqual([]);
    const paged = await httpJson('GET', `${server.url}/api/alerts?since=1h&before=${Math.max(...recent.body.items.map((e: any) => e.id))}`);
    expect(paged.body.items.length).toBe(1);
    const bad = await httpJson('GET', `${server.url}/api/alerts?since=yesterday`);
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('since');
  });

  it('scripted answers and asRecorded are for dry runs only', async () => {
    const plain = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'high-error-rate', answers: { rollback: 'approve' }, user: 'alice' });
    expect(plain.status).toBe(400);
    expect(JSON.stringify(plain.body)).toContain('dryRun');
    const noEpisode = await httpJson('POST', `${server.url}/api/runs`, { dryRun: true, playbook: 'high-error-rate', asRecorded: true, user: 'alice' });
    expect(noEpisode.status).toBe(400);
    expect(JSON.stringify(noEpisode.body)).toContain('episodeId');
    const badAnswer = await httpJson('POST', `${server.url}/api/runs`, { dryRun: true, playbook: 'high-error-rate', answers: { rollback: 'yes please' }, user: 'alice' });
    expect(badAnswer.status).toBe(400);
  });
});

describe('firebreak test catches the same change', () => {
  const test = (dir: string) => runCli(['test', join(dir, 'tests')], { DATABASE_URL: adminUrl() });

  it('the unchanged samples pass; a changed rollback URL fails, naming the request and both URLs', async () => {
    const same = await copyOf(join(ROOT, 'playbooks'));
    const ok = await test(same);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);

    const changed = await copyOf(join(ROOT, 'playbooks'));
    const file = join(changed, 'high-error-rate.yaml');
    await writeFile(file, (await readFile(file, 'utf8')).replace('/api/services/${{ alert.labels.service }}/rollback', '/api/v2/services/${{ alert.labels.service }}/rollback'));
    const res = await test(changed);
    expect(res.code, res.stdout + res.stderr).toBe(1);
    expect(res.stdout).toContain('requests.rollback.url');
    expect(res.stdout).toContain('https://deploy.internal/api/v2/services/checkout/rollback');
  });
});

