/**
 * The world the sample playbooks act on, made local: Prometheus, the deploy
 * API and the Kubernetes API answered by small HTTP servers that record
 * every request, so a test can count the side-effecting ones (anything but
 * GET/HEAD). Copies of the sample playbooks point at them, and the cleanup
 * script is replaced by one that only logs that it ran.
 */
import { readdir, readFile, writeFile, mkdir, mkdtemp, chmod } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually, httpJson, ROOT } from '../helpers/server.js';

export interface Call {
  host: string;
  method: string;
  path: string;
  query: URLSearchParams;
  body: string;
}

export interface World {
  /** Base URLs: `a` serves Prometheus and the deploy API, `k8s` the Kubernetes API (another loopback address when it can bind one). */
  a: string;
  k8s: string;
  /** Hosts for FIREBREAK_HTTP_ALLOW. */
  hosts: string[];
  calls: Call[];
  sideEffects(): Call[];
  close(): Promise<void>;
}

type Answer = { status: number; body: unknown };

function vector(value: number): Answer {
  return { status: 200, body: { status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [Date.now() / 1000, String(value)] }] } } };
}

/** Prometheus answers for the sample playbooks' queries: every sample alert is real trouble, and verification passes. */
function prometheus(query: string): Answer {
  if (query.includes('http_requests_total')) return vector(query.includes('[5m]') ? 0.081 : 0.004);
  if (query.includes('histogram_quantile')) return vector(query.includes('[5m]') ? 0.93 : 0.31);
  if (query.includes('kube_pod_container_status_restarts_total')) return vector(7);
  if (query.includes('CrashLoopBackOff')) return vector(0);
  if (query.includes('node_filesystem_avail_bytes')) return vector(4.2);
  return vector(0);
}

function answer(call: Call): Answer {
  if (call.path === '/prom/api/v1/query') return prometheus(call.query.get('query') ?? '');
  if (call.path.startsWith('/deploy/')) {
    if (call.method === 'GET') return { status: 200, body: { items: [{ id: 'd-41', version: '2024.05.14-1', at: '2024-05-14T09:01:00Z' }] } };
    return { status: 200, body: { ok: true } };
  }
  if (call.path.startsWith('/k8s/')) {
    if (call.path.endsWith('/scale')) return { status: 200, body: { kind: 'Scale', spec: { replicas: 4 }, status: { replicas: 4 } } };
    if (call.method === 'GET') return { status: 200, body: { kind: 'Pod', status: { phase: 'Running', containerStatuses: [{ name: 'cart', restartCount: 7, state: { waiting: { reason: 'CrashLoopBackOff' } } }] } } };
    return { status: 200, body: { kind: 'Status', status: 'Success' } };
  }
  return { status: 404, body: { error: 'not found' } };
}

async function listen(host: string, calls: Call[]): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', `http://${req.headers.host ?? host}`);
      const call: Call = { host, method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, body };
      calls.push(call);
      const a = answer(call);
      res.writeHead(a.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(a.body));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0 };
}

export async function startWorld(): Promise<World> {
  const calls: Call[] = [];
  const a = await listen('127.0.0.1', calls);
  // A second loopback address gives the Kubernetes steps their own `history` target, as in production.
  let k = await listen('127.0.0.2', calls).catch(() => undefined);
  const k8sHost = k ? '127.0.0.2' : '127.0.0.1';
  k ??= await listen('127.0.0.1', calls);
  const servers = [a.server, k.server];
  return {
    a: `http://127.0.0.1:${a.port}`,
    k8s: `http://${k8sHost}:${k.port}`,
    hosts: [...new Set(['127.0.0.1', k8sHost])],
    calls,
    sideEffects: () => calls.filter((c) => c.method !== 'GET' && c.method !== 'HEAD'),
    close: async () => {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
    },
  };
}

/**
 * Copies of playbooks/*.yaml with the sample hosts rewritten to the local
 * world, a cleanup script that appends its argv to `execLog` and does
 * nothing else, and any extra files.
 */
export async function samplePlaybooks(world: World, extra: Record<string, string> = {}): Promise<{ dir: string; execLog: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'fb-replay-playbooks-'));
  const execLog = join(await mkdtemp(join(tmpdir(), 'fb-replay-exec-')), 'exec.log');
  const src = join(ROOT, 'playbooks');
  for (const name of (await readdir(src)).filter((n) => /\.ya?ml$/.test(n))) {
    const text = (await readFile(join(src, name), 'utf8'))
      .replaceAll('http://prometheus:9090', `${world.a}/prom`)
      .replaceAll('https://deploy.internal', `${world.a}/deploy`)
      .replaceAll('https://kubernetes.default.svc', `${world.k8s}/k8s`);
    await writeFile(join(dir, name), text);
  }
  for (const [name, text] of Object.entries(extra)) await writeFile(join(dir, name), text);
  await mkdir(join(dir, 'scripts'));
  const script = join(dir, 'scripts', 'cleanup-disk.sh');
  await writeFile(script, `#!/bin/sh\necho "$*" >> '${execLog}'\necho "would delete 0 files, 0 bytes"\n`);
  await chmod(script, 0o755);
  return { dir, execLog };
}

export const FINISHED = ['succeeded', 'failed', 'aborted', 'cancelled'];

/** Finished, or waiting on an approval. */
export async function settled(base: string, runId: string, timeoutMs = 30_000): Promise<any> {
  return eventually(async () => {
    const r = await httpJson('GET', `${base}/api/runs/${runId}`);
    const run = r.body;
    if (FINISHED.includes(run.status)) return run;
    if (run.status === 'waiting' && run.approvals.some((a: any) => a.status === 'pending')) return run;
    return undefined;
  }, timeoutMs);
}

export async function timeline(base: string, runId: string): Promise<any> {
  return (await httpJson('GET', `${base}/api/runs/${runId}/timeline`)).body;
}

/** The policy decisions of a run, as the engine recorded them (without hashes that name the run). */
export async function decisions(base: string, runId: string): Promise<Array<Record<string, unknown>>> {
  const t = await timeline(base, runId);
  return t.events
    .filter((e: any) => e.kind === 'policy.decision')
    .map((e: any) => ({ stepId: e.data.stepId, allow: e.data.allow, requireApproval: e.data.requireApproval, approvers: e.data.approvers, minApprovals: e.data.minApprovals, reasons: e.data.reasons, bundleHash: e.data.bundleHash }));
}
