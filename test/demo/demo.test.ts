/**
 * `firebreak demo`, started as a newcomer would (a child process, from a
 * private folder): it prints the console URL; the high-error-rate run waits
 * for approval with real numbers gathered from the stand-ins; approving it
 * rolls back (the deploy stand-in saw it) and verifies; no run fails; Ctrl-C
 * stops everything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, eventually, freePort, httpJson, ROOT } from '../helpers/server.js';

let dir = '';
let child: ChildProcess | undefined;
let stdout = '';
let stderr = '';
afterAll(async () => {
  if (child && child.exitCode === null) {
    child.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
  }
  if (dir) {
    const location = join(dir, 'data', 'demo', 'pg-location');
    if (existsSync(location)) await rm(join((await readFile(location, 'utf8')).trim(), '..'), { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  }
});

async function waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(stdout);
    if (m) return m;
    if (child!.exitCode !== null) throw new Error(`demo exited with ${child!.exitCode}:\n${stdout}\n${stderr}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} in time:\n${stdout}\n${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('firebreak demo', () => {
  it('shows the whole flow: gather, approval, rollback, verify, no failed run; Ctrl-C stops it', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fb-demo-')); // 0700, like root's home
    child = spawn(process.execPath, [BIN, 'demo'], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: String(await freePort()), FIREBREAK_DATA_DIR: join(dir, 'data') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));

    const url = (await waitForOutput(/Console: (http:\/\/127\.0\.0\.1:\d+)\/\n/, 120_000))[1]!;
    expect(stdout).toMatch(/Next: .*approve/);
    const deployApi = (await waitForOutput(/deploy API on (127\.0\.0\.1:\d+)/, 1_000))[1]!;

    const waiting = await eventually(async () => {
      const runs = (await httpJson('GET', `${url}/api/runs?playbook=high-error-rate`)).body.items;
      return runs[0]?.status === 'waiting' ? runs[0] : undefined;
    }, 30_000);
    const run = (await httpJson('GET', `${url}/api/runs/${waiting.id}`)).body;
    const step = (id: string) => run.steps.find((s: { id: string }) => s.id === id);
    // Context gathered from the stand-ins: a real error ratio and the last deploy.
    expect(step('error_rate')).toMatchObject({ status: 'succeeded' });
    expect(step('error_rate').output.value).toBeGreaterThan(0.05);
    expect(step('error_rate').output.value).toBeLessThan(0.12);
    expect(step('last_deploy')).toMatchObject({ status: 'succeeded', output: { status: 200, body: { items: [{ version: 'v2.14.1' }] } } });
    expect(step('rollback').status).toBe('pending');
    const approval = run.approvals.find((a: { stepId: string }) => a.stepId === 'rollback');
    expect(approval).toMatchObject({ status: 'pending' });

    const answer = await httpJson('POST', `${url}/api/approvals/${approval.id}`, { decision: 'approve', user: 'alice' });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);

    const done = await eventually(async () => {
      const r = (await httpJson('GET', `${url}/api/runs/${waiting.id}`)).body;
      return r.finishedAt ? r : undefined;
    }, 30_000);
    expect(done.status, JSON.stringify(done.steps)).toBe('succeeded');
    const doneStep = (id: string) => done.steps.find((s: { id: string }) => s.id === id);
    expect(doneStep('rollback').output.body).toMatchObject({ service: 'checkout', rolledBack: true, from: 'v2.14.1', to: 'v2.14.0' });
    expect(doneStep('verify')).toMatchObject({ status: 'succeeded' });
    expect(doneStep('verify').output.value).toBeLessThan(0.01);

    // The deploy stand-in saw exactly one rollback, and the demo said so.
    const changes = (await httpJson('GET', `http://${deployApi}/api/changes`)).body.items;
    expect(changes.filter((c: { what: string }) => c.what === 'rollback')).toHaveLength(1);
    await waitForOutput(/rolled back checkout \(v2\.14\.1 -> v2\.14\.0\)/, 5_000);

    // The other sample runs wait for their approvals; none failed.
    const all = (await httpJson('GET', `${url}/api/runs`)).body.items;
    expect(all.length).toBeGreaterThanOrEqual(3);
    expect(all.filter((r: { status: string }) => r.status === 'failed')).toEqual([]);

    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child!.once('exit', (c) => r(c)));
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/demo stopped/);
    // The terminal tells the story; the server's JSON log (audit checkpoints included) is in a file.
    expect(stdout).not.toMatch(/^\{"level"/m);
    expect(await readFile(join(dir, 'data', 'demo', 'server.log'), 'utf8')).toMatch(/"msg":"firebreak is serving"/);
    expect(stderr).toBe('');
    // PostgreSQL was stopped too.
    const location = join(dir, 'data', 'demo', 'pg-location');
    const cluster = existsSync(location) ? (await readFile(location, 'utf8')).trim() : join(dir, 'data', 'demo', 'pg');
    expect(existsSync(join(cluster, 'postmaster.pid'))).toBe(false);
  });

  it('ran copies of the sample playbooks whose only change is the base URL of each call', async () => {
    const hosts = /Prometheus on (\S+), deploy API on (\S+), Kubernetes API on (\S+)/.exec(stdout)!;
    const back: Array<[string, string]> = [
      [`http://${hosts[1]}`, 'http://prometheus:9090'],
      [`http://${hosts[2]}`, 'https://deploy.internal'],
      [`http://${hosts[3]}`, 'https://kubernetes.default.svc'],
    ];
    const copies = join(dir, 'data', 'demo', 'playbooks');
    for (const file of ['high-error-rate.yaml', 'high-latency-scale-out.yaml', 'pod-crash-looping.yaml']) {
      const copy = await readFile(join(copies, file), 'utf8');
      expect(copy.split('\n')[0]).toMatch(/^# Demo copy of playbooks\//);
      let restored = copy.split('\n').slice(1).join('\n');
      for (const [standIn, origin] of back) restored = restored.split(standIn).join(origin);
      expect(restored, file).toBe(await readFile(join(ROOT, 'playbooks', file), 'utf8'));
    }
    // The one that runs a script on this machine is not part of the demo.
    expect(existsSync(join(copies, 'disk-almost-full.yaml'))).toBe(false);
  });
});
