/**
 * Dry run and replay through the contract (PRODUCT.md "Dry run and replay"):
 * every sample alert replayed against the sample playbooks sends nothing
 * that changes the world and gets the policy decisions its real run gets;
 * `replay --diff` names a changed `when:` and URL; `policy eval` gives the
 * engine's decision for the input the engine recorded.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluatePolicy } from '../../src/policy/index.js';
import { renderRunMessage, renderThreadLine } from '../../src/slack/render.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { httpJson, ROOT, runCli, startServer, type ServerProcess } from '../helpers/server.js';
import { decisions, FINISHED, samplePlaybooks, settled, startWorld, timeline, type World } from './helpers.js';

let db: TestDatabase;
let server: ServerProcess;
let world: World;
let dir: string;
let execLog: string;

const ALERTS = join(ROOT, 'examples', 'alerts');
const DEPLOY_TOKEN = 'deploy-tok-5c1e9a77f3';
const K8S_TOKEN = 'k8s-tok-0b2d4f6a8c';

const diffDemo = (base: string, restartPath: string, notifyWhen: string) => `
name: diff-demo
description: restart a web service (replay --diff fixture)
triggers:
  - source: alertmanager
    matchers: ['alertname="DiffDemo"']
steps:
  - id: status
    action: http.request
    with: { url: "${base}/deploy/status/\${{ alert.labels.service }}" }
  - id: restart
    action: http.request
    with:
      method: POST
      url: "${base}${restartPath}/\${{ alert.labels.service }}"
      headers: { Authorization: "Bearer \${{ secrets.DEPLOY_TOKEN }}" }
  - id: notify
    action: slack.message
    when: ${notifyWhen}
    with: { text: "restarted \${{ alert.labels.service }}" }
`;

const diffAlert = {
  version: '4',
  status: 'firing',
  receiver: 'firebreak',
  groupKey: '{}:{alertname="DiffDemo"}',
  groupLabels: { alertname: 'DiffDemo' },
  commonLabels: {},
  commonAnnotations: {},
  externalURL: 'http://alertmanager:9093',
  truncatedAlerts: 0,
  alerts: [
    {
      status: 'firing',
      labels: { alertname: 'DiffDemo', service: 'web', severity: 'critical' },
      annotations: { summary: 'web is unhappy' },
      startsAt: '2024-05-14T10:00:00Z',
      endsAt: '0001-01-01T00:00:00Z',
      generatorURL: 'http://prometheus/graph',
      fingerprint: 'd1ffd1ffd1ffd1ff',
    },
  ],
};

beforeAll(async () => {
  db = await createTestDatabase();
  world = await startWorld();
  ({ dir, execLog } = await samplePlaybooks(world, { 'diff-demo.yaml': diffDemo(world.a, '/deploy/restart', 'alert.labels.severity == "critical"') }));
  server = await startServer({
    DATABASE_URL: db.url,
    FIREBREAK_PLAYBOOKS: dir,
    FIREBREAK_HTTP_ALLOW: world.hosts.join(','),
    FIREBREAK_SECRET_DEPLOY_TOKEN: DEPLOY_TOKEN,
    FIREBREAK_SECRET_K8S_TOKEN: K8S_TOKEN,
  });
});

afterAll(async () => {
  await server?.stop();
  await world?.close();
  await db?.drop();
});

const cli = (args: string[]) => runCli(args, { FIREBREAK_URL: server.url });

/** Answer every pending approval of a run (as alice, an SRE) until it finishes. */
async function drive(runId: string, decision: 'approve' | 'reject'): Promise<any> {
  for (let i = 0; i < 10; i++) {
    const run = await settled(server.url, runId, 45_000);
    if (FINISHED.includes(run.status)) return run;
    for (const a of run.approvals.filter((x: any) => x.status === 'pending')) {
      const res = await httpJson('POST', `${server.url}/api/approvals/${a.id}`, { decision, user: 'alice', via: 'cli' });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
    }
  }
  throw new Error(`run ${runId} did not finish`);
}

/** How each sample's approvals are answered: rejecting where approving would start a long wait. */
const ANSWERS: Record<string, 'approve' | 'reject'> = {
  'disk-almost-full.json': 'reject', // verify would poll a disk that stays full for 10 min
  'high-error-rate.json': 'approve',
  'high-latency.json': 'reject', // approving starts a 3 min settle wait
  'pod-crash-looping.json': 'approve',
};

/** How many times the cleanup script ran. */
const execRuns = async () => (existsSync(execLog) ? (await readFile(execLog, 'utf8')).split('\n').filter(Boolean).length : 0);
const wouldCalls = (t: any) => t.events.filter((e: any) => e.kind === 'step.would_call');
const sampleRuns: Array<{ file: string; dry: string; real: string }> = [];

describe('replay of every sample alert against the sample playbooks', () => {
  it('sends no side-effecting request, and gets the decisions a real run gets', async () => {
    const files = (await readdir(ALERTS)).filter((f) => f.endsWith('.json')).sort();
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const file of files) {
      const before = world.sideEffects().length;
      const execBefore = await execRuns();
      const res = await cli(['replay', join(ALERTS, file), '--as', 'dana']);
      expect(res.code, res.stderr + res.stdout).toBe(0);
      const ids = [...res.stdout.matchAll(/^\[DRY RUN\] (\S+)\s+run ([0-9a-f-]{36})/gm)].map((m) => ({ playbook: m[1]!, id: m[2]! }));
      expect(ids, res.stdout).toHaveLength(1);
      const dryId = ids[0]!.id;
      // What replay printed: steps, decisions, the rendered requests, secrets redacted.
      expect(res.stdout).toContain('policy: allowed');
      expect(res.stdout).toMatch(/would call: /);
      expect(res.stdout).not.toContain(DEPLOY_TOKEN);
      expect(res.stdout).not.toContain(K8S_TOKEN);
      const printed = await settled(server.url, dryId);
      if (printed.status === 'waiting') {
        const pending = printed.approvals.find((a: any) => a.status === 'pending');
        expect(res.stdout).toContain(`approval ${pending.id} for step ${pending.stepId} is pending`);
      }

      const dryRun = await drive(dryId, ANSWERS[file]!);
      expect(dryRun.dryRun).toBe(true);
      expect(world.sideEffects().length, `side effects during the dry run of ${file}`).toBe(before);
      expect(await execRuns(), 'the cleanup script ran in a dry run').toBe(execBefore);

      // The same alert for real.
      const fired = await httpJson('POST', `${server.url}/hooks/alertmanager`, await readFile(join(ALERTS, file), 'utf8'));
      expect(fired.status).toBe(202);
      expect(fired.body.runs).toHaveLength(1);
      const realId = fired.body.runs[0];
      const realRun = await drive(realId, ANSWERS[file]!);
      expect(realRun.dryRun).toBe(false);
      expect(realRun.playbook).toBe(dryRun.playbook);
      expect(dryRun.status).toBe(realRun.status);
      expect(dryRun.steps.map((s: any) => [s.id, s.status])).toEqual(realRun.steps.map((s: any) => [s.id, s.status]));

      const dryDecisions = await decisions(server.url, dryId);
      expect(dryDecisions.length).toBeGreaterThan(0);
      expect(dryDecisions).toEqual(await decisions(server.url, realId));

      // Every HTTP "would call" of the dry run is a request the real run made.
      const realCalls = world.sideEffects().slice(before).map((c) => `${c.method} ${c.path}`);
      const dryT = await timeline(server.url, dryId);
      for (const w of wouldCalls(dryT)) {
        const r = w.data.request;
        if (typeof r.url === 'string') expect(realCalls).toContain(`${r.method} ${new URL(r.url).pathname}`);
        expect(JSON.stringify(w.data)).not.toMatch(new RegExp(`${DEPLOY_TOKEN}|${K8S_TOKEN}`));
      }
      sampleRuns.push({ file, dry: dryId, real: realId });
    }

    // The counter counts: the real runs did change the world.
    // (With one loopback address for everything, pod-crash-looping's DELETE is denied by the blast radius, in both runs alike.)
    expect(world.sideEffects().map((c) => c.method)).toEqual(expect.arrayContaining(world.hosts.length > 1 ? ['DELETE', 'POST'] : ['POST']));
    expect((await readFile(execLog, 'utf8')).trim().split('\n')).toEqual(['--days 7 /var/log /var/crash /var/tmp']);
  });

  it('records the fully rendered requests, secrets redacted, with Idempotency-Key', async () => {
    const errorRate = sampleRuns.find((r) => r.file === 'high-error-rate.json')!;
    const t = await timeline(server.url, errorRate.dry);
    const rollback = wouldCalls(t).find((e: any) => e.data.stepId === 'rollback');
    expect(rollback.data.request).toEqual({
      method: 'POST',
      url: `${world.a}/deploy/api/services/checkout/rollback`,
      headers: { Authorization: 'Bearer [redacted]', 'content-type': 'application/json', 'Idempotency-Key': `${errorRate.dry}:rollback:1` },
      body: JSON.stringify({ reason: `firebreak run ${errorRate.dry}: 5xx ratio 0.081` }),
    });
    expect(rollback.data.reason).toBe('side_effect');
    // Gather steps ran for real: the rollback's `when:` saw the real error rate.
    const errorRateStep = t.events.find((e: any) => e.kind === 'step.succeeded' && e.data.stepId === 'error_rate');
    expect(errorRateStep.data.output.value).toBe(0.081);
    const disk = sampleRuns.find((r) => r.file === 'disk-almost-full.json')!;
    const execCall = wouldCalls(await timeline(server.url, disk.dry)).find((e: any) => e.data.stepId === 'dry_run');
    expect(execCall.data.request).toEqual({ script: 'cleanup-disk.sh', args: ['--days', '7', '/var/log', '/var/crash', '/var/tmp'], env: [] });
  });

  it('marks dry runs in the API, CLI, Markdown timeline, console and Slack messages', async () => {
    const { dry, real } = sampleRuns.find((r) => r.file === 'high-error-rate.json')!;
    const api = await httpJson('GET', `${server.url}/api/runs/${dry}`);
    expect(api.body.dryRun).toBe(true);
    expect(api.body.dryRunOptions).toMatchObject({ requestedBy: 'local:dana', alertSource: 'alertmanager', playbooksFrom: 'server' });
    // A replayed alert runs as the alert's run would: trigger alert, nobody started it.
    expect(api.body.trigger).toBe('alert');
    expect(api.body.startedBy).toBeNull();
    // ... and is not one of the episode's runs.
    expect(api.body.episodeId).toBeNull();
    const alerts = await httpJson('GET', `${server.url}/api/alerts`);
    const episode = alerts.body.items.find((e: any) => e.runs.includes(real));
    expect(episode.runs).toEqual([real]);

    const md = await httpJson('GET', `${server.url}/api/runs/${dry}/timeline?format=md`);
    expect(md.body).toContain('DRY RUN');
    expect(md.body).toContain('would call POST');
    const realMd = await httpJson('GET', `${server.url}/api/runs/${real}/timeline?format=md`);
    expect(realMd.body).not.toContain('DRY RUN');

    const runs = await cli(['runs', '--limit', '50']);
    expect(runs.stdout).toMatch(new RegExp(`${dry}\\s+high-error-rate \\[dry\\]`));
    const one = await cli(['run', dry]);
    expect(one.stdout).toContain('[DRY RUN]');

    const page = await httpJson('GET', `${server.url}/runs/${dry}`);
    expect(page.status).toBe(200);
    expect(String(page.body)).toContain('DRY RUN');

    const info = { id: dry, playbook: 'high-error-rate', trigger: 'alert', startedBy: null, dryRun: true, alert: null, params: {}, createdAt: new Date() };
    expect(renderRunMessage(info, 'http://firebreak').text).toContain('[DRY RUN]');
    expect(renderThreadLine({ kind: 'step.would_call', actor: 'system', data: { stepId: 'rollback', request: { method: 'POST', url: 'https://x' } }, time: new Date() }, true)).toContain('would call (dry run)');
  });

  it('keeps dry runs out of the policy history', async () => {
    // Every decision input the engine recorded lists real runs only.
    for (const { dry, real } of sampleRuns) {
      for (const id of [dry, real]) {
        const t = await timeline(server.url, id);
        for (const e of t.events.filter((x: any) => x.kind === 'policy.decision')) {
          for (const h of e.data.input.history) expect(sampleRuns.some((r) => r.dry === h.run_id)).toBe(false);
        }
      }
    }
  });
});

describe('policy what-if', () => {
  it('firebreak policy eval gives the decision the engine recorded, for the input it recorded', async () => {
    let checked = 0;
    let rollback: any;
    for (const { dry, real } of sampleRuns) {
      for (const id of [dry, real]) {
        const t = await timeline(server.url, id);
        for (const e of t.events.filter((x: any) => x.kind === 'policy.decision')) {
          const what = await evaluatePolicy(join(ROOT, 'policies'), 'firebreak/decision', e.data.input);
          expect(what.inputHash).toBe(e.data.inputHash);
          expect(what.bundleHash).toBe(e.data.bundleHash);
          expect({ allow: what.result.allow, requireApproval: what.result.require_approval, approvers: what.result.approvers, minApprovals: what.result.min_approvals, reasons: what.result.reasons }).toEqual({
            allow: e.data.allow,
            requireApproval: e.data.requireApproval,
            approvers: e.data.approvers,
            minApprovals: e.data.minApprovals,
            reasons: e.data.reasons,
          });
          checked++;
          if (e.data.stepId === 'rollback' && id === real) rollback ??= e;
        }
      }
    }
    expect(checked).toBeGreaterThan(10);

    // Through the command line, for the real rollback decision (high impact, needs an SRE's approval).
    const event = rollback;
    const tmp = await mkdtemp(join(tmpdir(), 'fb-whatif-'));
    const input = join(tmp, 'input.json');
    await writeFile(input, JSON.stringify(event.data.input, null, 2));
    const res = await cli(['policy', 'eval', '--entrypoint', 'firebreak/decision', '--input', input]);
    expect(res.code, res.stderr).toBe(0);
    const printed = JSON.parse(res.stdout);
    expect(printed.inputHash).toBe(event.data.inputHash);
    expect(printed.result).toEqual({ allow: true, require_approval: true, approvers: event.data.approvers, min_approvals: 1, reasons: event.data.reasons });

    // What if it were a low-impact step? The author edits the input and asks again.
    await writeFile(input, JSON.stringify({ ...event.data.input, step: { ...event.data.input.step, impact: 'low' } }));
    const low = JSON.parse((await cli(['policy', 'eval', '--entrypoint', 'firebreak/decision', '--input', input])).stdout);
    expect(low.result).toMatchObject({ allow: true, require_approval: false, reasons: ['low-impact step: runs without approval'] });
  });
});

describe('replay --diff', () => {
  it('shows where a changed when: and a changed URL make the runs diverge', async () => {
    const changed = await mkdtemp(join(tmpdir(), 'fb-replay-b-'));
    await writeFile(join(changed, 'diff-demo.yaml'), diffDemo(world.a, '/deploy/restart-v2', 'alert.labels.severity == "page"'));
    const alertFile = join(changed, '..', `${changed.split('/').pop()}-alert.json`);
    await writeFile(alertFile, JSON.stringify(diffAlert));
    const before = world.sideEffects().length;
    const res = await cli(['replay', alertFile, '--diff', changed, '--as', 'dana']);
    expect(res.code, res.stderr + res.stdout).toBe(0);
    expect(world.sideEffects().length).toBe(before);
    const out = res.stdout;
    expect(out).toContain(`=== diff: A = the server's playbooks, B = ${changed} ===`);
    const section = out.slice(out.indexOf('=== diff'));
    // The URL change.
    expect(section).toContain('step restart: rendered request differs');
    expect(section).toContain(`A: POST ${world.a}/deploy/restart/web`);
    expect(section).toContain(`B: POST ${world.a}/deploy/restart-v2/web`);
    // The when: change.
    expect(section).toContain('step notify: taken/skipped differs');
    expect(section).toMatch(/A: taken/);
    expect(section).toContain('B: skipped (when: alert.labels.severity == "page")');
    // Unchanged steps do not show up.
    expect(section).not.toContain('step status:');

    // The same folder against itself: no divergence.
    const same = await mkdtemp(join(tmpdir(), 'fb-replay-same-'));
    await writeFile(join(same, 'diff-demo.yaml'), diffDemo(world.a, '/deploy/restart', 'alert.labels.severity == "critical"'));
    const again = await cli(['replay', alertFile, '--diff', same, '--playbook', 'diff-demo']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('no divergence: same steps taken, same decisions, same rendered requests');
  });

  it('reports problems in the other folder as file:line', async () => {
    const broken = await mkdtemp(join(tmpdir(), 'fb-replay-broken-'));
    await writeFile(join(broken, 'bad.yaml'), 'name: bad\ntriggers: []\nsteps:\n  - id: x\n    action: no.such.action\n');
    const res = await cli(['replay', join(ALERTS, 'high-error-rate.json'), '--diff', broken]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/bad\.yaml:\d+: /);
  });
});
