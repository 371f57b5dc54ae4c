/**
 * `firebreak` command line. Commands that act on runs talk to the running
 * server's HTTP API (so approvals go through the same policy check as a
 * Slack click); audit and read commands can also open the database directly.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { auditPassed, loadAuditKey, parseCheckpointFile, verifyAudit, type VerifyOptions, type VerifyReport } from '../audit/index.js';
import { isLoopbackHost, loadConfig, maskUrlCredentials, type Config } from '../config/index.js';
import { FirebreakError, ValidationError } from '../errors.js';
import { createActionRegistry, loadCustomActions } from '../actions/index.js';
import { formatProblem, isError, validatePlaybooks } from '../playbooks/index.js';
import { evaluatePolicy, runPolicyTests } from '../policy/index.js';
import { replayCommand } from '../replay/index.js';
import { createPool, grantAppRole, isDatabaseUnavailable, migrate, runningEmbeddedUrl, startEmbeddedPostgres } from '../store/index.js';
import { formatDuration, renderTimeline, type TimelineView } from '../timeline/index.js';
import { join } from 'node:path';
import { progress } from './progress.js';
import { stampWithNow } from './stamp.js';

const HELP = `firebreak — incident-response playbook bot

Usage:
  firebreak serve                                  run the server (what npm start runs)
  firebreak demo                                   the whole flow on this machine: stand-ins, sample alerts, console
  firebreak validate [dir]                         check playbooks; file:line: message per problem
  firebreak fire <alert.json> [--source alertmanager] [--keep-times]
                                                   post a sample alert to the running server, its times moved to now
  firebreak runs [--status s] [--playbook p] [--limit n]
  firebreak run <id>                               show one run
  firebreak run-playbook <name> [key=value...] [--as user] [--dry-run]
  firebreak replay <alert.json | episode-id> [--playbook p] [--no-gather] [--source alertmanager] [--diff <playbooks-dir>]
                                                   dry-run an alert; print each step, decision and "would call"
  firebreak approve <approval-id> --as <user>      approve without Slack
  firebreak reject <approval-id> --as <user>
  firebreak abort <run-id> [--as user] [--reason text]
  firebreak timeline <run> [--format md|json]      the postmortem timeline
  firebreak audit verify [run] [--checkpoints f]   recompute hash chains, check them against runs and signed
                                                   checkpoints (stored, and exported to f); exit 1 if any is broken
  firebreak migrate [--grant-to <role>]            apply database migrations (as the owning role); grant an
                                                   application role what the server needs (docs/deploy.md)
  firebreak policy test                            Rego unit tests (needs opa) + bundle freshness
  firebreak policy eval --entrypoint e --input f   what-if: print a policy decision

Environment: see README (DATABASE_URL, PORT, HOST, FIREBREAK_API_TOKEN, FIREBREAK_AUDIT_KEY, FIREBREAK_URL ...).`;

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function err(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Config for CLI commands: same validation as serve, but a client need not satisfy server-only rules. */
function cliConfig(): Config {
  return loadConfig({ ...process.env, FIREBREAK_INSECURE: process.env.FIREBREAK_INSECURE ?? '1' }, { client: true });
}

function serverUrl(config: Config): string {
  return (process.env.FIREBREAK_URL ?? config.publicUrl).replace(/\/+$/, '');
}

interface ApiResponse {
  status: number;
  body: unknown;
  text: string;
}

async function api(config: Config, method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
  const url = `${serverUrl(config)}${path}`;
  const auth: Record<string, string> = {};
  if (path.startsWith('/api/') && config.apiToken) auth.authorization = `Bearer ${config.apiToken}`;
  let response;
  try {
    response = await request(url, {
      method,
      headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...auth, ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
  } catch (e) {
    throw new CliError(`cannot reach the firebreak server at ${serverUrl(config)} (${(e as Error).message}); is it running? Set FIREBREAK_URL to point elsewhere.`);
  }
  const text = await response.body.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* markdown or plain text */
  }
  return { status: response.statusCode, body: parsed, text };
}

class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

function expectOk(res: ApiResponse, what: string): unknown {
  if (res.status >= 200 && res.status < 300) return res.body;
  const body = res.body as { error?: string; details?: Array<{ path: string; message: string }> };
  const details = body?.details?.map((d) => `  ${d.path}: ${d.message}`).join('\n');
  throw new CliError(`${what} failed (HTTP ${res.status}): ${body?.error ?? res.text}${details ? `\n${details}` : ''}`);
}

/** Direct database access for audit/read commands: DATABASE_URL, or the embedded cluster of FIREBREAK_DATA_DIR. */
async function withDatabase<T>(config: Config, fn: (pool: ReturnType<typeof createPool>) => Promise<T>): Promise<T> {
  let url = config.databaseUrl ?? (await runningEmbeddedUrl(config.dataDir));
  let stopEmbedded: (() => Promise<void>) | undefined;
  if (!url) {
    const pg = await startEmbeddedPostgres({ dataDir: config.dataDir, progress: (message) => err(`${message}…`) });
    url = pg.url;
    stopEmbedded = () => pg.stop();
  }
  const pool = createPool(url, undefined, 2);
  try {
    return await fn(pool);
  } finally {
    await pool.end().catch(() => {});
    await stopEmbedded?.();
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

interface RunJson {
  id: string;
  playbook: string;
  status: string;
  trigger: string;
  dryRun: boolean;
  createdAt: string;
  finishedAt: string | null;
  startedBy: string | null;
  steps: Array<{ id: string; action: string; status: string; attempts: number }>;
  approvals: Array<{ id: string; stepId: string; status: string; approvers: string[]; decidedBy: string | null }>;
}

function printRun(run: RunJson): void {
  out(`run ${run.id}${run.dryRun ? '  [DRY RUN]' : ''}`);
  out(`  playbook: ${run.playbook}   status: ${run.status}   trigger: ${run.trigger}${run.startedBy ? ` by ${run.startedBy}` : ''}`);
  out(`  created:  ${run.createdAt}   finished: ${run.finishedAt ?? '-'}`);
  out('  steps:');
  out(table([['    id', 'action', 'status', 'attempts'], ...run.steps.map((s) => [`    ${s.id}`, s.action, s.status, String(s.attempts)])]));
  if (run.approvals.length > 0) {
    out('  approvals:');
    out(table([['    id', 'step', 'status', 'approvers', 'decided by'], ...run.approvals.map((a) => [`    ${a.id}`, a.stepId, a.status, a.approvers.join(',') || '(any)', a.decidedBy ?? '-'])]));
  }
}

async function cmdValidate(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const config = cliConfig();
  const dir = positionals[0] ?? config.playbooksDir;
  const actions = createActionRegistry(await loadCustomActions(join(dir, 'actions')));
  const reported = await validatePlaybooks(dir, actions);
  for (const p of reported) out(formatProblem(p));
  const problems = reported.filter(isError).length;
  const warnings = reported.length - problems;
  const warned = warnings > 0 ? ` (${warnings} warning${warnings === 1 ? '' : 's'})` : '';
  if (problems > 0) {
    err(`${problems} problem${problems === 1 ? '' : 's'} found${warned}`);
    return 1;
  }
  out(`ok: playbooks in ${dir} are valid${warned}`);
  return 0;
}

async function cmdFire(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { source: { type: 'string', default: 'alertmanager' }, 'keep-times': { type: 'boolean', default: false } } });
  const file = positionals[0];
  if (!file) throw new CliError('usage: firebreak fire <alert.json> [--source alertmanager] [--keep-times]');
  const config = cliConfig();
  let body = await readFile(file, 'utf8');
  let moved = '';
  if (!values['keep-times']) {
    // Not JSON: sent as it is, so the server's 400 names the problem.
    const parsed = (() => {
      try {
        return JSON.parse(body) as unknown;
      } catch {
        return undefined;
      }
    })();
    if (parsed !== undefined) {
      const stamped = stampWithNow(parsed, Date.now());
      body = JSON.stringify(stamped.payload);
      if (Math.abs(stamped.shiftedMs) >= 1_000) moved = ` (times moved ${formatDuration(Math.abs(stamped.shiftedMs))} ${stamped.shiftedMs > 0 ? 'forward' : 'back'} to now; --keep-times sends them as written)`;
    }
  }
  const headers: Record<string, string> = {};
  if (config.webhookToken) headers.authorization = `Bearer ${config.webhookToken}`;
  const res = await api(config, 'POST', `/hooks/${values.source}`, body, headers);
  const result = expectOk(res, 'fire') as { runs: string[]; episodes: Array<{ fingerprint: string; status: string; deliveries: number }> };
  out(`accepted (HTTP ${res.status}): ${result.episodes.length} alert(s), runs: ${result.runs.join(', ') || 'none'}${moved}`);
  return 0;
}

async function cmdRuns(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { status: { type: 'string' }, playbook: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } } });
  const config = cliConfig();
  const q = new URLSearchParams();
  for (const k of ['status', 'playbook', 'limit'] as const) if (values[k]) q.set(k, values[k]!);
  const body = expectOk(await api(config, 'GET', `/api/runs?${q}`), 'list runs') as { items: RunJson[] };
  if (values.json) return out(JSON.stringify(body, null, 2)), 0;
  if (body.items.length === 0) return out('no runs'), 0;
  out(table([['id', 'playbook', 'status', 'trigger', 'created', 'steps'], ...body.items.map((r) => [r.id, r.playbook + (r.dryRun ? ' [dry]' : ''), r.status, r.trigger, r.createdAt, r.steps.map((s) => `${s.id}:${s.status}`).join(' ')])]));
  return 0;
}

async function cmdRun(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
  if (!positionals[0]) throw new CliError('usage: firebreak run <id>');
  const run = expectOk(await api(cliConfig(), 'GET', `/api/runs/${encodeURIComponent(positionals[0])}`), 'show run') as RunJson;
  if (values.json) out(JSON.stringify(run, null, 2));
  else printRun(run);
  return 0;
}

async function cmdRunPlaybook(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { as: { type: 'string' }, 'dry-run': { type: 'boolean' } } });
  const [playbook, ...pairs] = positionals;
  if (!playbook) throw new CliError('usage: firebreak run-playbook <name> [key=value...] [--as user] [--dry-run]');
  const params: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError(`parameter "${pair}" must be key=value`);
    params[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const user = values.as ?? process.env.USER ?? 'cli';
  const run = expectOk(await api(cliConfig(), 'POST', '/api/runs', { playbook, params, user, via: 'cli', dryRun: values['dry-run'] ?? false }), 'start run') as RunJson;
  out(`started run ${run.id} (${run.playbook})${run.dryRun ? ' [DRY RUN]' : ''}`);
  return 0;
}

async function cmdAnswer(decision: 'approve' | 'reject', args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { as: { type: 'string' } } });
  const id = positionals[0];
  if (!id || !values.as) throw new CliError(`usage: firebreak ${decision} <approval-id> --as <user>`);
  const res = await api(cliConfig(), 'POST', `/api/approvals/${encodeURIComponent(id)}`, { decision, user: values.as, via: 'cli' });
  if (res.status === 403) throw new CliError(`refused: ${(res.body as { reason?: string }).reason ?? res.text}`);
  const result = expectOk(res, decision) as { outcome: string; approvals: number; minApprovals: number; runId: string };
  out(`${result.outcome}: approval ${id} (${result.approvals}/${result.minApprovals} approvals) for run ${result.runId}`);
  return 0;
}

async function cmdAbort(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { as: { type: 'string' }, reason: { type: 'string' } } });
  if (!positionals[0]) throw new CliError('usage: firebreak abort <run-id> [--as user] [--reason text]');
  const result = expectOk(await api(cliConfig(), 'POST', `/api/runs/${encodeURIComponent(positionals[0])}/abort`, { user: values.as ?? process.env.USER ?? 'cli', reason: values.reason, via: 'cli' }), 'abort') as { status: string };
  out(`${result.status}: run ${positionals[0]}`);
  return 0;
}

async function cmdTimeline(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { format: { type: 'string', default: 'md' } } });
  const id = positionals[0];
  const format = values.format;
  if (!id || (format !== 'md' && format !== 'json')) throw new CliError('usage: firebreak timeline <run> --format md|json');
  const config = cliConfig();
  const res = await api(config, 'GET', `/api/runs/${encodeURIComponent(id)}/timeline?format=${format}`).catch(async (e) => {
    // No server running: read the database directly.
    if (!(e instanceof CliError)) throw e;
    const view = await withDatabase(config, (pool) => renderTimeline(pool, id, format));
    return { status: 200, body: view, text: typeof view === 'string' ? view : JSON.stringify(view) } as ApiResponse;
  });
  const body = expectOk(res, 'timeline');
  if (format === 'md') out(typeof body === 'string' ? body : res.text);
  else out(JSON.stringify(body as TimelineView, null, 2));
  return 0;
}

/** Most broken chains printed one per line; the rest are counted (a wrong key breaks every chain). */
const MAX_BROKEN_LINES = 200;

function printAuditReport(report: VerifyReport, elapsedMs: number): boolean {
  const lines = [
    ...report.brokenRecords.map((b) => `BROKEN ${b.what}: ${b.problem}`),
    ...report.broken.map((b) =>
      b.seq === null
        ? `BROKEN chain ${b.chainId}: ${b.problem}`
        : /removed from the end/.test(b.problem)
          ? `BROKEN chain ${b.chainId}: last event seq ${b.seq} (id ${b.id}, kind ${b.kind}): ${b.problem}`
          : `BROKEN chain ${b.chainId}: first broken event seq ${b.seq} (id ${b.id}, kind ${b.kind}): ${b.problem}`,
    ),
  ];
  for (const line of lines.slice(0, MAX_BROKEN_LINES)) out(line);
  if (lines.length > MAX_BROKEN_LINES) out(`... and ${lines.length - MAX_BROKEN_LINES} more`);
  for (const note of report.notes) err(`note: ${note}`);
  const latest = report.checkpoints.latest;
  const checkpoints = `${report.checkpoints.stored} stored checkpoint(s)${latest ? ` (latest #${latest.seq} at ${latest.time})` : ''}${report.checkpoints.external ? `, ${report.checkpoints.external} exported` : ''}`;
  const summary = `${report.chains} chain(s), ${report.events} event(s) checked under audit key ${report.keyId} in ${formatDuration(elapsedMs)}; ${checkpoints}`;
  if (!auditPassed(report)) {
    err(`audit FAILED: ${report.broken.length} broken chain(s), ${report.brokenRecords.length} other problem(s); ${summary}`);
    return false;
  }
  out(`audit ok: ${summary}`);
  return true;
}

async function cmdAudit(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const usage = 'usage: firebreak audit verify [run] [--checkpoints exported.json]';
  if (sub !== 'verify') throw new CliError(usage);
  const { positionals, values } = parseArgs({ args: rest, allowPositionals: true, options: { checkpoints: { type: 'string' } } });
  if (positionals.length > 1) throw new CliError(usage);
  const chainId = positionals[0];
  const config = cliConfig();
  // Verify never creates a key: a new one could not check anything already written.
  const { key, warning } = await loadAuditKey({ material: config.auditKey, dataDir: config.dataDir, create: false });
  if (warning) err(`warning: ${warning}`);
  let external: VerifyOptions['external'];
  if (values.checkpoints) {
    const text = await readFile(values.checkpoints, 'utf8').catch((e: Error) => {
      throw new CliError(`cannot read ${values.checkpoints}: ${e.message}`);
    });
    external = { source: values.checkpoints, checkpoints: parseCheckpointFile(text, values.checkpoints) };
  }
  const started = Date.now();
  const shown = progress();
  const report = await withDatabase(config, (pool) =>
    verifyAudit(pool, {
      key,
      ...(chainId && { chainId }),
      ...(external && { external }),
      onProgress: (checked, total) => shown.update(`verifying: ${checked}/${total} events (${Math.round((checked / Math.max(1, total)) * 100)}%)`),
    }),
  ).finally(() => shown.done());
  if (chainId && report.events === 0 && report.broken.length === 0) throw new CliError(`no timeline events for run ${chainId}`);
  return printAuditReport(report, Date.now() - started) ? 0 : 1;
}

async function cmdMigrate(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { 'grant-to': { type: 'string' } } });
  if (positionals.length > 0) throw new CliError('usage: firebreak migrate [--grant-to <role>]');
  const config = cliConfig();
  return withDatabase(config, async (pool) => {
    const applied = await migrate(pool);
    out(applied.length > 0 ? `applied: ${applied.join(', ')}` : 'schema up to date');
    const role = values['grant-to'];
    if (role) {
      await grantAppRole(pool, role);
      out(`granted ${role}: read/write on the working tables, read + insert only on the audit tables, read only on the migration bookkeeping`);
    }
    return 0;
  });
}

async function cmdPolicy(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const config = cliConfig();
  if (sub === 'test') {
    const result = await runPolicyTests(config.policiesDir);
    if (result.output) out(result.output);
    return result.exitCode;
  }
  if (sub === 'eval') {
    const { values } = parseArgs({ args: rest, options: { entrypoint: { type: 'string', default: 'firebreak/decision' }, input: { type: 'string' } } });
    if (!values.input) throw new CliError('usage: firebreak policy eval --entrypoint firebreak/decision --input input.json');
    let input: unknown;
    try {
      input = JSON.parse(await readFile(values.input, 'utf8'));
    } catch (e) {
      throw new CliError(`cannot read ${values.input}: ${(e as Error).message}`);
    }
    const evaluated = await evaluatePolicy(config.policiesDir, values.entrypoint!, input);
    out(JSON.stringify(evaluated, null, 2));
    return evaluated.error ? 1 : 0;
  }
  throw new CliError('usage: firebreak policy test | firebreak policy eval --entrypoint e --input file');
}

async function cmdServe(): Promise<number> {
  const config = loadConfig();
  if (config.insecure && config.host && !['127.0.0.1', 'localhost', '::1'].includes(config.host)) {
    err(`WARNING: FIREBREAK_INSECURE=1: serving on ${config.host} without requiring webhook/API tokens`);
  }
  const { startApp } = await import('../app/index.js');
  const app = await startApp(config);
  if (config.insecure) app.logger.warn({ host: config.host }, 'FIREBREAK_INSECURE=1: webhook and API tokens are not required');
  if (config.insecure && !config.auditKey && !isLoopbackHost(config.host)) app.logger.warn({ host: config.host }, 'FIREBREAK_INSECURE=1: the audit key comes from a file in FIREBREAK_DATA_DIR; replicas with other data dirs write chains the others cannot verify');
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      app.logger.info({ signal }, 'shutting down');
      void app.stop().finally(resolve);
    };
    process.once('SIGINT', () => shutdown('SIGINT'));
    process.once('SIGTERM', () => shutdown('SIGTERM'));
  });
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'serve':
        return await cmdServe();
      case 'demo':
        return await (await import('../demo/index.js')).demoCommand(args, { out, err });
      case 'validate':
        return await cmdValidate(args);
      case 'fire':
        return await cmdFire(args);
      case 'runs':
        return await cmdRuns(args);
      case 'run':
        return await cmdRun(args);
      case 'run-playbook':
        return await cmdRunPlaybook(args);
      case 'replay': {
        const config = cliConfig();
        return await replayCommand(args, { api: (method, path, body) => api(config, method, path, body), expectOk, fail: (m) => new CliError(m), out, err });
      }
      case 'approve':
      case 'reject':
        return await cmdAnswer(command, args);
      case 'abort':
        return await cmdAbort(args);
      case 'timeline':
        return await cmdTimeline(args);
      case 'audit':
        return await cmdAudit(args);
      case 'migrate':
        return await cmdMigrate(args);
      case 'policy':
        return await cmdPolicy(args);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        out(HELP);
        return command === undefined ? 1 : 0;
      default:
        err(`unknown command "${command}"\n\n${HELP}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof ValidationError) {
      err(`${e.message}:`);
      for (const d of e.details) err(`  ${d.path}: ${d.message}`);
      return 1;
    }
    if (e instanceof CliError) {
      err(e.message);
      return e.exitCode;
    }
    // Typed failures carry a message written for the operator (audit key, migrations, embedded Postgres): no stack trace.
    if (e instanceof FirebreakError && !isDatabaseUnavailable(e)) {
      err(maskUrlCredentials(e.message));
      return 1;
    }
    if (isDatabaseUnavailable(e)) {
      err(`database unavailable: ${maskUrlCredentials((e as Error).message)}`);
      return 1;
    }
    if (e instanceof Error && (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      err(e.message);
      return 2;
    }
    // Anything else: one line, with any connection string's password masked (never a stack of secrets).
    err(maskUrlCredentials(e instanceof Error ? e.message : String(e)));
    return 1;
  }
}
