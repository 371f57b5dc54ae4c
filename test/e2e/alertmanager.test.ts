/**
 * End to end with the real Prometheus Alertmanager (Debian's
 * prometheus-alertmanager): its webhook receiver points at a running
 * Firebreak, alerts are pushed with amtool. Repeats within repeat_interval
 * and group changes are delivered again and start nothing new; the resolve
 * closes the episode and aborts the run (on_resolved: abort).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, freePort, httpJson, startServer, type ServerProcess } from '../helpers/server.js';

function which(name: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

const ALERTMANAGER = which('prometheus-alertmanager') ?? which('alertmanager');
const AMTOOL = which('amtool');
const MISSING = !ALERTMANAGER || !AMTOOL;
const TOKEN = 'e2e-webhook-token';

let db: TestDatabase;
let server: ServerProcess;
let am: ChildProcess | undefined;
let amUrl = '';
let amLogs = '';
let workdir = '';

async function startAlertmanager(webhookUrl: string): Promise<void> {
  workdir = await mkdtemp(join(tmpdir(), 'fb-alertmanager-'));
  const port = await freePort();
  amUrl = `http://127.0.0.1:${port}`;
  await writeFile(
    join(workdir, 'alertmanager.yml'),
    `route:
  receiver: firebreak
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: firebreak
    webhook_configs:
      - url: ${webhookUrl}
        send_resolved: true
        http_config:
          authorization:
            credentials: ${TOKEN}
`,
  );
  am = spawn(
    ALERTMANAGER!,
    [
      `--config.file=${join(workdir, 'alertmanager.yml')}`,
      `--storage.path=${join(workdir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=', // no HA gossip: one instance
      '--log.level=info',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  am.stdout!.on('data', (d) => (amLogs += d));
  am.stderr!.on('data', (d) => (amLogs += d));
  await eventually(async () => {
    if (am!.exitCode !== null) throw new Error(`alertmanager exited ${am!.exitCode}:\n${amLogs}`);
    return (await httpJson('GET', `${amUrl}/-/ready`)).status === 200;
  }, 20_000);
}

function amtool(...args: string[]): string {
  const out = spawnSync(AMTOOL!, [...args, `--alertmanager.url=${amUrl}`], { encoding: 'utf8', timeout: 15_000 });
  if (out.status !== 0) throw new Error(`amtool ${args.join(' ')} failed (${out.status}): ${out.stderr}${out.stdout}`);
  return out.stdout;
}

const LABELS = ['alertname=E2EHighErrorRate', 'service=checkout', 'severity=critical'];

async function episodesByInstance(): Promise<Map<string, any>> {
  const { rows } = await db.pool.query(
    `select e.id, e.fingerprint, e.starts_at, e.status, e.deliveries, e.labels->>'instance' as instance,
            coalesce((select json_agg(r.id) from runs r where r.episode_id = e.id), '[]'::json) as runs
     from alert_episodes e where e.source = 'alertmanager'`,
  );
  return new Map(rows.map((r) => [r.instance, r]));
}

if (MISSING) {
  describe('Alertmanager end to end', () => {
    it.skip('SKIPPED: prometheus-alertmanager and amtool are not installed (apt-get install -y prometheus-alertmanager)', () => {});
  });
} else {
  beforeAll(async () => {
    db = await createTestDatabase();
    const dir = await playbooksDir({
      'e2e.yaml': `
name: e2e-error-rate
triggers:
  - source: alertmanager
    matchers: ['alertname="E2EHighErrorRate"', 'severity=~"critical|page"']
on_resolved: abort
steps:
  - id: context
    action: note
    with: { text: "\${{ alert.labels.service }} on \${{ alert.labels.instance }}" }
  - id: hold
    action: wait
    with: { duration: 5m }
`,
    });
    server = await startServer({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: dir, FIREBREAK_WEBHOOK_TOKEN: TOKEN });
    await startAlertmanager(`${server.url}/hooks/alertmanager`);
  });

  afterAll(async () => {
    if (am && am.exitCode === null) {
      am.kill('SIGTERM');
      await new Promise((r) => am!.once('exit', r));
    }
    await server?.stop();
    await db?.drop();
    if (workdir) await rm(workdir, { recursive: true, force: true });
  });

  describe('Alertmanager end to end', () => {
    it('delivers repeats and group changes; one episode starts one run however often it is sent', async () => {
      amtool('alert', 'add', ...LABELS, 'instance=web-1', '--annotation=summary=checkout 5xx rate above 5%', '--generator-url=http://prometheus:9090/graph');
      const first = await eventually(async () => (await episodesByInstance()).get('web-1'), 15_000);
      expect(first).toMatchObject({ status: 'firing', deliveries: 1 });
      expect(first.runs).toHaveLength(1);
      const runId = first.runs[0];
      // The run goes on: its first step done, it holds in a durable wait.
      await eventually(async () => {
        const run = (await httpJson('GET', `${server.url}/api/runs/${runId}`)).body;
        return run.steps?.[0]?.status === 'succeeded' && run.steps[1].status === 'running';
      }, 15_000);

      // The same alert pushed again (as Prometheus does every evaluation) and Alertmanager's own repeat_interval re-sends.
      amtool('alert', 'add', ...LABELS, 'instance=web-1', '--annotation=summary=checkout 5xx rate above 5%');
      const repeated = await eventually(async () => {
        const e = (await episodesByInstance()).get('web-1');
        return e && e.deliveries >= 3 ? e : undefined;
      }, 20_000);
      expect(repeated.id).toBe(first.id);
      expect(repeated.runs).toEqual([runId]);

      // A second alert joins the group: the group is sent again with both; the first still has one run.
      amtool('alert', 'add', ...LABELS, 'instance=web-2', '--annotation=summary=checkout 5xx rate above 5% (web-2)');
      const both = await eventually(async () => {
        const m = await episodesByInstance();
        return m.get('web-2') ? m : undefined;
      }, 15_000);
      expect(both.get('web-2').runs).toHaveLength(1);
      expect(both.get('web-1').runs).toEqual([runId]);
      const { rows } = await db.pool.query("select count(*)::int as n from alert_notifications where source = 'alertmanager'");
      expect(rows[0].n).toBeGreaterThanOrEqual(4);
      const total = await db.pool.query("select count(*)::int as n from runs where playbook = 'e2e-error-rate'");
      expect(total.rows[0].n).toBe(2);
      // The API shows the episode as the contract says.
      const api = await httpJson('GET', `${server.url}/api/alerts?source=alertmanager`);
      const listed = api.body.items.find((a: any) => a.fingerprint === first.fingerprint);
      expect(listed).toMatchObject({ source: 'alertmanager', status: 'firing', runs: [runId] });
      expect(listed.deliveries).toBeGreaterThanOrEqual(3);
      expect(new Date(listed.startsAt).getTime()).toBe(new Date(first.starts_at).getTime());
    });

    it('the resolve closes the episode, reaches the run timeline and aborts the run (on_resolved: abort)', async () => {
      const before = (await episodesByInstance()).get('web-1');
      const runId = before.runs[0];
      const startsAt = new Date(before.starts_at).toISOString();
      const ended = new Date(Date.now() - 1_000).toISOString();
      amtool('alert', 'add', ...LABELS, 'instance=web-1', `--start=${startsAt}`, `--end=${ended}`);
      const closed = await eventually(async () => {
        const e = (await episodesByInstance()).get('web-1');
        return e?.status === 'resolved' ? e : undefined;
      }, 20_000);
      expect(closed.id).toBe(before.id);
      expect(closed.runs).toEqual([runId]);
      const run = await eventually(async () => {
        const r = (await httpJson('GET', `${server.url}/api/runs/${runId}`)).body;
        return ['aborted', 'succeeded', 'failed', 'cancelled'].includes(r.status) ? r : undefined;
      }, 20_000);
      expect(run.status).toBe('aborted');
      const timeline = await httpJson('GET', `${server.url}/api/runs/${runId}/timeline`);
      const kinds = timeline.body.events.map((e: any) => e.kind);
      expect(kinds).toContain('alert.resolved');
      expect(kinds.indexOf('alert.resolved')).toBeLessThan(kinds.lastIndexOf('run.aborted'));
      // The other alert of the group is still firing, with its run still going.
      const other = (await episodesByInstance()).get('web-2');
      expect(other.status).toBe('firing');
      expect((await httpJson('GET', `${server.url}/api/runs/${other.runs[0]}`)).body.status).toMatch(/queued|running|waiting/);
    });
  });
}
