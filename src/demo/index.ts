/**
 * `firebreak demo`: the whole flow on one machine, no outside service.
 *
 * Starts local stand-ins for Prometheus, a deploy API and the Kubernetes API,
 * its own embedded Postgres (a fresh database on every start, so runs of an
 * earlier demo never resume against stand-ins that are gone), the server on
 * demo copies of the sample playbooks (see playbooks.ts), fires the sample
 * alerts with current times, and prints the console URL. Ctrl-C stops it all.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import pino from 'pino';
import { request } from 'undici';
import { stampWithNow } from '../cli/stamp.js';
import { loadConfig, sensitiveValues, type Config } from '../config/index.js';
import { createActionRegistry } from '../actions/index.js';
import { loadPlaybooks, matchesAlert } from '../playbooks/index.js';
import { packageRoot, startEmbeddedPostgres, type EmbeddedPostgresHandle } from '../store/index.js';
import { writeDemoPlaybooks } from './playbooks.js';
import { sampleWorld, startDeployApi, startKubernetesApi, startPrometheus, type ChangeRecord, type StandIn } from './stand-ins.js';

export interface DemoIo {
  out(text: string): void;
  err(text: string): void;
}

const DEMO_DATABASE = 'firebreak_demo';
const DEFAULT_PORT = 8080;

async function portIsFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolvePort) => {
    const server = createServer();
    server.once('error', () => resolvePort(false));
    server.listen(port, host, () => server.close(() => resolvePort(true)));
  });
}

/** PORT when set; else 8080, or a free port when 8080 is taken (a `npm start` already running, say). */
async function choosePort(env: NodeJS.ProcessEnv, host: string): Promise<number> {
  if (env.PORT) return Number(env.PORT);
  if (await portIsFree(DEFAULT_PORT, host)) return DEFAULT_PORT;
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no free port'))));
    });
  });
}

/** A fresh database in the demo's own cluster on every start. */
async function freshDatabase(clusterUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: clusterUrl });
  await client.connect();
  try {
    await client.query(`drop database if exists ${DEMO_DATABASE} with (force)`);
    await client.query(`create database ${DEMO_DATABASE}`);
  } finally {
    await client.end();
  }
  const url = new URL(clusterUrl);
  url.pathname = `/${DEMO_DATABASE}`;
  return url.toString();
}

const CHANGE_WORDS: Record<ChangeRecord['what'], string> = {
  rollback: 'rolled back',
  'roll-forward': 'rolled forward',
  scale: 'scaled',
  'delete-pod': 'deleted pod',
};

function describeChange(change: ChangeRecord): string {
  const detail = (() => {
    try {
      const d = JSON.parse(change.detail) as { from?: string; to?: string };
      return d.from && d.to ? `${d.from} -> ${d.to}` : d.to ? `to ${d.to}` : change.detail;
    } catch {
      return change.detail;
    }
  })();
  return `stand-in saw a change: ${CHANGE_WORDS[change.what]} ${change.target} (${detail})`;
}

interface Fired {
  file: string;
  runs: string[];
}

export async function demoCommand(args: string[], io: DemoIo): Promise<number> {
  // No options: PORT and FIREBREAK_DATA_DIR choose the port and the folder, as for `serve`.
  parseArgs({ args, options: {} });
  const say = (text: string) => io.out(`  ${text}`);
  const env = process.env;
  // The demo listens on loopback only unless HOST says otherwise (then the usual token rules apply).
  const base = loadConfig({ ...env, FIREBREAK_INSECURE: env.FIREBREAK_INSECURE ?? '' });
  const root = packageRoot();
  const demoDir = resolve(base.dataDir, 'demo');
  io.out('Firebreak demo: alerts in, a policy-gated run with an approval, a hash-chained timeline; everything on this machine.');

  const world = sampleWorld();
  const token = (name: string) => `demo-${name}-${randomBytes(9).toString('base64url')}`;
  const deployToken = token('deploy');
  const k8sToken = token('k8s');
  const standIns: StandIn[] = [];
  let cluster: EmbeddedPostgresHandle | undefined;
  let app: Awaited<ReturnType<typeof import('../app/index.js').startApp>> | undefined;
  const stopAll = async () => {
    await app?.stop().catch((e: Error) => io.err(`stopping the server: ${e.message}`));
    for (const s of standIns) await s.close();
    await cluster?.stop().catch((e: Error) => io.err(e.message));
  };

  try {
    const onChange = (change: ChangeRecord) => say(describeChange(change));
    const onError = (message: string) => io.err(message);
    standIns.push(await startPrometheus(world, onError), await startDeployApi(world, deployToken, onChange, onError), await startKubernetesApi(world, k8sToken, onChange, onError));
    const [prometheus, deploy, kubernetes] = standIns as [StandIn, StandIn, StandIn];
    say(`stand-ins: Prometheus on ${prometheus.host}, deploy API on ${deploy.host}, Kubernetes API on ${kubernetes.host}`);

    const playbooks = await writeDemoPlaybooks(join(root, 'playbooks'), demoDir, { prometheus: prometheus.url, deploy: deploy.url, kubernetes: kubernetes.url });
    say(`playbooks: ${playbooks.copied.map((f) => f.replace(/\.ya?ml$/, '')).join(', ')} (copies in ${relative(process.cwd(), playbooks.dir) || '.'} pointed at the stand-ins)`);
    for (const s of playbooks.skipped) say(`left out: ${s.file.replace(/\.ya?ml$/, '')} (${s.why})`);

    if (env.DATABASE_URL) say('DATABASE_URL is not used: the demo keeps its own embedded PostgreSQL and starts a fresh database each time');
    cluster = await startEmbeddedPostgres({ dataDir: demoDir, progress: (m) => say(`${m}…`) });
    const databaseUrl = await freshDatabase(cluster.url);

    const port = await choosePort(env, base.host);
    const demoEnv: NodeJS.ProcessEnv = {
      ...env,
      DATABASE_URL: databaseUrl,
      FIREBREAK_DATA_DIR: demoDir,
      FIREBREAK_PLAYBOOKS: playbooks.dir,
      FIREBREAK_POLICIES: join(root, 'policies'),
      FIREBREAK_HTTP_ALLOW: standIns.map((s) => s.host).join(','),
      FIREBREAK_SECRET_DEPLOY_TOKEN: deployToken,
      FIREBREAK_SECRET_K8S_TOKEN: k8sToken,
      PORT: String(port),

      // No outside service: Slack stays off even when this shell has it configured.
      SLACK_BOT_TOKEN: '',
      SLACK_SIGNING_SECRET: '',
      SLACK_APP_TOKEN: '',
    };
    if (!env.PORT && port !== DEFAULT_PORT) say(`port ${DEFAULT_PORT} is taken: using ${port} (set PORT to choose)`);
    say('starting the server…');
    const config: Config = loadConfig(demoEnv);
    const { createLogger, startApp } = await import('../app/index.js');
    // The terminal tells the demo's story; the server's own log (JSON lines) goes to a file.
    const logFile = join(demoDir, 'server.log');
    app = await startApp(config, { logger: createLogger(config.logLevel, { sensitive: sensitiveValues(config), destination: pino.destination({ dest: logFile, sync: true, mkdir: true, append: false }) }) });
    say(`server log: ${relative(process.cwd(), logFile) || logFile}`);
    const url = app.url.replace(/\/+$/, '');

    const names = new Map<string, string>();
    app.engine.onEvent((runId, events) => {
      const playbook = names.get(runId);
      if (!playbook) return;
      for (const e of events) {
        if (e.kind === 'approval.requested') say(`${playbook} (run ${runId.slice(0, 8)}) waits for an approval of step ${String(e.data?.stepId)}`);
        else if (/^run\.(succeeded|failed|aborted|cancelled)$/.test(e.kind)) say(`${playbook} (run ${runId.slice(0, 8)}) ${e.kind.slice(4)}`);
      }
    });
    const { playbooks: demoPlaybooks } = await loadPlaybooks(playbooks.dir, { actions: createActionRegistry() });
    const fired = await fireSamples(join(root, 'examples', 'alerts'), url, config, (labels) => demoPlaybooks.some((p) => matchesAlert(p, { source: 'alertmanager', labels })));
    for (const f of fired) {
      for (const id of f.runs) names.set(id, await playbookOf(url, config, id));
      say(`fired ${f.file}: ${f.runs.length ? f.runs.map((id) => `run ${id.slice(0, 8)} (${names.get(id)})`).join(', ') : 'no run'}`);
    }

    io.out('');
    io.out(`Console: ${url}/`);
    io.out('Next: open it and approve the checkout rollback as alice or bob (the sample SREs); the run rolls back, verifies the error ratio and finishes. Ctrl-C stops everything.');
  } catch (err) {
    await stopAll();
    throw err;
  }

  await new Promise<void>((resolveStop) => {
    const stop = (signal: string) => {
      io.out(`\n${signal}: stopping the server, the stand-ins and PostgreSQL…`);
      process.once('SIGINT', () => process.exit(130)); // a second Ctrl-C does not wait
      void stopAll().finally(resolveStop);
    };
    process.once('SIGINT', () => stop('Ctrl-C'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  io.out('demo stopped');
  return 0;
}

function apiHeaders(config: Config): Record<string, string> {
  return config.apiToken ? { authorization: `Bearer ${config.apiToken}` } : {};
}

async function playbookOf(url: string, config: Config, runId: string): Promise<string> {
  const res = await request(`${url}/api/runs/${encodeURIComponent(runId)}`, { headers: apiHeaders(config) });
  const body = (await res.body.json()) as { playbook?: string };
  return body.playbook ?? 'run';
}

/**
 * Post the sample alerts that a demo playbook matches, the way Alertmanager
 * would, their times moved to now (as `firebreak fire` does).
 */
async function fireSamples(dir: string, url: string, config: Config, matched: (labels: Record<string, string>) => boolean): Promise<Fired[]> {
  const fired: Fired[] = [];
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.json')).sort()) {
    const sample = JSON.parse(await readFile(join(dir, file), 'utf8')) as { alerts?: Array<{ labels?: Record<string, string> }> };
    if (!(sample.alerts ?? []).some((a) => matched(a.labels ?? {}))) continue;
    const { payload } = stampWithNow(sample, Date.now());
    const res = await request(`${url}/hooks/alertmanager`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(config.webhookToken && { authorization: `Bearer ${config.webhookToken}` }) },
      body: JSON.stringify(payload),
    });
    const text = await res.body.text();
    if (res.statusCode !== 202) throw new Error(`the server refused examples/alerts/${file} (HTTP ${res.statusCode}): ${text}`);
    fired.push({ file: `examples/alerts/${file}`, runs: (JSON.parse(text) as { runs: string[] }).runs });
  }
  return fired;
}
