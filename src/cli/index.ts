/**
 * `firebreak` command line. Commands that act on runs talk to the running
 * server's HTTP API (so approvals go through the same policy check as a
 * Slack click); audit and read commands can also open the database directly.
 */
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import pino from 'pino';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { Access, AS_HEADER, identity, isValidName, parseTtl, type Identity, type TokenRecord } from '../access/index.js';
import { auditPassed, loadAuditKey, parseCheckpointFile, verifyAudit, type AuditKey, type VerifyOptions, type VerifyReport } from '../audit/index.js';
import { isLocalMode, isLoopbackHost, loadConfig, maskUrlCredentials, type Config } from '../config/index.js';
import { FirebreakError, ValidationError } from '../errors.js';
import { createActionRegistry, loadCustomActions } from '../actions/index.js';
import { formatProblem, isError, validatePlaybooks } from '../playbooks/index.js';
import { createPolicyGate, evaluatePolicy, runPolicyTests } from '../policy/index.js';
import { replayCommand } from '../replay/index.js';
import { createPool, grantAppRole, isDatabaseUnavailable, migrate, runningEmbeddedUrl, startEmbeddedPostgres } from '../store/index.js';
import { formatDuration, hashEvent, legacyHashEvent, renderTimeline, rowToEvent, Timeline, type EventRow, type TimelineView } from '../timeline/index.js';
import { join } from 'node:path';
import { progress } from './progress.js';
import { silenceCommand } from './silence.js';
import { stampWithNow } from './stamp.js';

const HELP = `firebreak — incident-response playbook bot

Usage:
  firebreak serve                                  run the server (what npm start runs)
  firebreak demo                                   the whole flow on this machine: stand-ins, sample alerts, console
  firebreak validate [dir]                         check playbooks; file:line: message per problem
  firebreak fire <alert.json> [--source alertmanager] [--keep-times]
                                                   post a sample alert to the running server, its times moved to now
  firebreak playbooks                              the loaded playbooks and their current revisions
  firebreak revisions <playbook> [--all] [--diff <hash>]
                                                   a playbook's revisions, newest first; --diff: a revision
                                                   against the current one, as a line diff
  firebreak runs [--status s] [--playbook p] [--limit n] [--stuck]
                                                   list runs; --stuck: those that stopped making progress, and why
  firebreak run <id>                               show one run
  firebreak run-playbook <name> [key=value...] [--dry-run] [--as name]
  firebreak replay <alert.json | episode-id> [--playbook p] [--no-gather] [--source alertmanager] [--diff <playbooks-dir>]
                                                   dry-run an alert; print each step, decision and "would call"
  firebreak replay --since <duration> --playbooks <dir> [--expect-same]
                                                   replay every episode of the window against another folder;
                                                   print where the result differs (exit 1 with --expect-same)
  firebreak test [dir] [--playbooks <dir>]         run the playbook tests (default <FIREBREAK_PLAYBOOKS>/tests) as
                                                   hermetic dry runs; a diff per failure, exit 1 if any fails
  firebreak approve <approval-id> [--comment text] approve without Slack, as the identity of FIREBREAK_TOKEN
  firebreak reject <approval-id> [--comment text]
  firebreak abort <run-id> [--reason text]
  firebreak pause [<playbook>] --reason text       kill switch: no run starts, no further step starts (all, or one playbook)
  firebreak resume [<playbook>] [--reason text]    let automation go on (the global switch, or one playbook)
  firebreak automation [--json]                    what is paused, by whom, when and why; each playbook's limits
  firebreak retry <run-id> [--from <step>] [--reason text]
                                                   a failed (aborted, cancelled) run continues from the step that
                                                   failed (or --from an earlier one) with a new attempt
  firebreak cancel <run-id> [--reason text]        end an active run now, without compensation
  firebreak whoami                                 who the server takes you for
  firebreak token create <user> [--ttl 30d] [--group g]... [--description text]
                                                   a personal API token (printed once, on stdout)
  firebreak token list [--all] [--json]            tokens (--all: also revoked and expired)
  firebreak token revoke <id>                      revoke; ends console sessions opened with it
  firebreak silence add <matcher>... --for <duration> --reason <text>
                                                   silence matching alerts (Alertmanager matchers, e.g.
                                                   'service="checkout"'; at most 30d); prints the silence id
  firebreak silence list [--all | --expired] [--json]
                                                   active and pending silences (--all: also expired ones)
  firebreak silence expire <id> [--reason text]    end a silence now
  firebreak timeline <run> [--format md|json]      the postmortem timeline
  firebreak audit verify [run] [--checkpoints f]   recompute hash chains, check them against runs and signed
                                                   checkpoints (stored, and exported to f); exit 1 if any is broken
  firebreak migrate [--grant-to <role>]            apply database migrations (as the owning role); grant an
                                                   application role what the server needs (docs/deploy.md)
  firebreak policy test                            Rego unit tests (needs opa) + bundle freshness
  firebreak policy eval --entrypoint e --input f   what-if: print a policy decision

Identity: commands that call the server send FIREBREAK_TOKEN (a personal token) as
Authorization: Bearer, else FIREBREAK_API_TOKEN (the service: start runs, read; it
cannot answer approvals). --as <name> names you in local mode only (no authentication
configured); it is recorded as unverified. Without FIREBREAK_TOKEN, "token" commands
work on the database directly (DATABASE_URL or the embedded one) as the operator.

Environment: see README (DATABASE_URL, PORT, HOST, FIREBREAK_TOKEN, FIREBREAK_API_TOKEN, FIREBREAK_AUDIT_KEY, FIREBREAK_URL ...).`;

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

/** The Bearer credential the CLI sends: a personal token (FIREBREAK_TOKEN), else the service token. */
function credential(config: Config): string | undefined {
  return process.env.FIREBREAK_TOKEN?.trim() || config.apiToken;
}

/** Headers naming who acts: `--as` is a local-mode claim, refused with a token (the token already says who). */
function asHeaders(config: Config, as: string | undefined): Record<string, string> {
  if (as === undefined) return {};
  if (credential(config)) {
    throw new CliError(`--as is only for local mode (no authentication configured); ${process.env.FIREBREAK_TOKEN ? 'FIREBREAK_TOKEN' : 'FIREBREAK_API_TOKEN'} already says who you are`, 2);
  }
  return { [AS_HEADER]: as };
}

async function api(config: Config, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
  const url = `${serverUrl(config)}${path}`;
  const auth: Record<string, string> = {};
  const bearer = credential(config);
  if (path.startsWith('/api/') && bearer) auth.authorization = `Bearer ${bearer}`;
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

async function cmdPlaybooks(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' } } });
  const body = expectOk(await api(cliConfig(), 'GET', '/api/playbooks'), 'list playbooks') as { items: Array<{ name: string; revision: string; file: string; steps: unknown[]; limits: unknown }> };
  if (values.json) return out(JSON.stringify(body, null, 2)), 0;
  if (body.items.length === 0) return out('no playbooks loaded'), 0;
  out(table([['name', 'revision', 'steps', 'file'], ...body.items.map((p) => [p.name, p.revision.slice(0, 12), String(p.steps.length), p.file])]));
  return 0;
}

async function cmdRevisions(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { all: { type: 'boolean' }, diff: { type: 'string' }, json: { type: 'boolean' } } });
  const name = positionals[0];
  if (!name || positionals.length > 1) throw new CliError('usage: firebreak revisions <playbook> [--all] [--diff <hash>] [--json]');
  const config = cliConfig();
  const base = `/api/playbooks/${encodeURIComponent(name)}/revisions`;
  if (values.diff) {
    const rev = expectOk(await api(config, 'GET', `${base}/${encodeURIComponent(values.diff)}`), 'read revision') as { hash: string; current: boolean; diff: { against: string; unified: string } | null };
    if (values.json) return out(JSON.stringify(rev, null, 2)), 0;
    if (!rev.diff) return out(`revision ${rev.hash}: ${name} is not loaded now, nothing to compare with`), 0;
    out(rev.diff.unified || `revision ${rev.hash.slice(0, 12)} reads the same as the current one (${rev.diff.against.slice(0, 12)})`);
    return 0;
  }
  const body = expectOk(await api(config, 'GET', `${base}${values.all ? '?all=true' : ''}`), 'list revisions') as { items: Array<{ hash: string; file: string | null; firstSeenAt: string; runs: number; current: boolean }> };
  if (values.json) return out(JSON.stringify(body, null, 2)), 0;
  out(table([['revision', 'first seen', 'runs', 'file', ''], ...body.items.map((r) => [r.hash.slice(0, 12), r.firstSeenAt, String(r.runs), r.file ?? '(sent with a dry run)', r.current ? 'current' : ''])]));
  return 0;
}

async function cmdTest(args: string[]): Promise<number> {
  const config = cliConfig();
  const { testCommand } = await import('../playbook-tests/index.js');
  const { localDryRunBackend } = await import('../app/local.js');
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn', base: null }, pino.destination(2));
  return testCommand(args, {
    out,
    err,
    fail: (m) => new CliError(m),
    playbooksDir: config.playbooksDir,
    actions: async (dir) => createActionRegistry(await loadCustomActions(join(dir, 'actions'))),
    backend: (playbooksDir) =>
      localDryRunBackend({ ...(config.databaseUrl && { databaseUrl: config.databaseUrl }), dataDir: config.dataDir, policiesDir: config.policiesDir, playbooksDir, logger, progress: (m) => err(`${m}…`) }, 'test'),
  });
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
  const { values } = parseArgs({ args, options: { status: { type: 'string' }, playbook: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' }, stuck: { type: 'boolean' } } });
  const config = cliConfig();
  const q = new URLSearchParams();
  for (const k of ['status', 'playbook', 'limit'] as const) if (values[k]) q.set(k, values[k]!);
  if (values.stuck) q.set('stuck', 'true');
  const body = expectOk(await api(config, 'GET', `/api/runs?${q}`), 'list runs') as { items: Array<RunJson & { stuck?: { since: string; stepId: string | null; thresholdMs: number } }> };
  if (values.json) return out(JSON.stringify(body, null, 2)), 0;
  if (body.items.length === 0) return out(values.stuck ? 'no stuck runs' : 'no runs'), 0;
  if (values.stuck) {
    out(table([['id', 'playbook', 'status', 'step', 'no progress since', 'threshold'], ...body.items.map((r) => [r.id, r.playbook, r.status, r.stuck?.stepId ?? '-', r.stuck?.since ?? '', `${Math.round((r.stuck?.thresholdMs ?? 0) / 1000)}s`])]));
    out('repair: firebreak cancel <run-id>, then firebreak retry <run-id> [--from <step>]');
    return 0;
  }
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
  if (!playbook) throw new CliError('usage: firebreak run-playbook <name> [key=value...] [--dry-run] [--as name]');
  const params: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError(`parameter "${pair}" must be key=value`);
    params[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const config = cliConfig();
  const run = expectOk(await api(config, 'POST', '/api/runs', { playbook, params, dryRun: values['dry-run'] ?? false }, asHeaders(config, values.as)), 'start run') as RunJson;
  out(`started run ${run.id} (${run.playbook})${run.dryRun ? ' [DRY RUN]' : ''}`);
  return 0;
}

async function cmdAnswer(decision: 'approve' | 'reject', args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { as: { type: 'string' }, comment: { type: 'string' } } });
  const id = positionals[0];
  if (!id) throw new CliError(`usage: firebreak ${decision} <approval-id> [--comment text]   (as FIREBREAK_TOKEN's identity; --as <name> in local mode)`);
  const config = cliConfig();
  const res = await api(config, 'POST', `/api/approvals/${encodeURIComponent(id)}`, { decision, ...(values.comment && { comment: values.comment }) }, asHeaders(config, values.as));
  if (res.status === 403) {
    const body = res.body as { reason?: string; reasons?: string[]; error?: string };
    throw new CliError(`refused: ${body.reason ?? body.reasons?.join('; ') ?? body.error ?? res.text}`);
  }
  const result = expectOk(res, decision) as { outcome: string; approvals: number; minApprovals: number; runId: string; actor: string };
  out(`${result.outcome}: approval ${id} (${result.approvals}/${result.minApprovals} approvals) for run ${result.runId}, as ${result.actor}`);
  return 0;
}

async function cmdAbort(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { as: { type: 'string' }, reason: { type: 'string' } } });
  if (!positionals[0]) throw new CliError('usage: firebreak abort <run-id> [--reason text]');
  const config = cliConfig();
  const result = expectOk(await api(config, 'POST', `/api/runs/${encodeURIComponent(positionals[0])}/abort`, { ...(values.reason && { reason: values.reason }) }, asHeaders(config, values.as)), 'abort') as { status: string };
  out(`${result.status}: run ${positionals[0]}`);
  return 0;
}

interface PauseJson {
  playbook: string | null;
  pausedBy: string;
  pausedAt: string;
  reason: string;
  source: string;
}

const scopeOf = (playbook: string | null | undefined) => (playbook ? `playbook ${playbook}` : 'all automation');
const describePause = (p: PauseJson) => `${scopeOf(p.playbook)} paused by ${p.pausedBy}${p.source === 'circuit_breaker' ? ' (circuit breaker)' : ''} at ${p.pausedAt}: ${p.reason}`;

/** `firebreak pause|resume [<playbook>]`: the kill switch, as the identity of FIREBREAK_TOKEN. */
async function cmdSwitch(verb: 'pause' | 'resume', args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { as: { type: 'string' }, reason: { type: 'string' } } });
  if (positionals.length > 1) throw new CliError(`usage: firebreak ${verb} [<playbook>] ${verb === 'pause' ? '--reason text' : '[--reason text]'}`, 2);
  if (verb === 'pause' && !values.reason?.trim()) throw new CliError('say why: firebreak pause [<playbook>] --reason "..." (it is recorded in the timeline)', 2);
  const config = cliConfig();
  const body = { ...(positionals[0] && { playbook: positionals[0] }), ...(values.reason && { reason: values.reason }) };
  const result = expectOk(await api(config, 'POST', `/api/${verb}`, body, asHeaders(config, values.as)), verb) as {
    alreadyPaused?: boolean;
    pause: PauseJson | null;
    resumed?: boolean;
    stillPaused?: PauseJson[];
  };
  if (verb === 'pause') {
    out(result.alreadyPaused ? `already paused: ${describePause(result.pause!)}` : `paused: ${scopeOf(positionals[0])}; no run starts and no further step starts until someone resumes it`);
  } else {
    out(result.resumed ? `resumed: ${scopeOf(positionals[0])}; held runs go on` : `${scopeOf(positionals[0])} was not paused`);
    for (const p of result.stillPaused ?? []) out(`still paused: ${describePause(p)}`);
  }
  return 0;
}

async function cmdAutomation(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' } } });
  const status = expectOk(await api(cliConfig(), 'GET', '/api/automation'), 'automation') as {
    paused: boolean;
    pause: PauseJson | null;
    playbooks: Array<{ name: string; paused: boolean; pause: PauseJson | null; limits: { key: string | null; maxRuns: number | null; per: string | null; cooldown: string | null } | null; circuitBreaker: { failures: number } | null }>;
  };
  if (values.json) {
    out(JSON.stringify(status, null, 2));
    return 0;
  }
  out(status.pause ? `ALL AUTOMATION PAUSED: ${describePause(status.pause)}` : 'automation: running');
  for (const p of status.playbooks) {
    const rails = [
      p.limits?.maxRuns ? `max ${p.limits.maxRuns} runs per ${p.limits.per}` : '',
      p.limits?.cooldown ? `cooldown ${p.limits.cooldown}` : '',
      p.limits?.key ? `per ${p.limits.key}` : '',
      p.circuitBreaker ? `breaker after ${p.circuitBreaker.failures} failures` : '',
    ].filter(Boolean);
    out(`${p.name}: ${p.pause ? `PAUSED (${describePause(p.pause)})` : p.paused ? 'held (all automation paused)' : 'running'}${rails.length ? `; ${rails.join(', ')}` : ''}`);
  }
  return 0;
}

async function cmdRetry(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { as: { type: 'string' }, reason: { type: 'string' }, from: { type: 'string' } } });
  if (!positionals[0]) throw new CliError('usage: firebreak retry <run-id> [--from <step>] [--reason text]');
  const config = cliConfig();
  const body = { ...(values.from && { from: values.from }), ...(values.reason && { reason: values.reason }) };
  const result = expectOk(await api(config, 'POST', `/api/runs/${encodeURIComponent(positionals[0])}/retry`, body, asHeaders(config, values.as)), 'retry') as RunJson & { retried: { fromStep: string; retry: number; previousStatus: string } };
  out(`retried: run ${result.id} (was ${result.retried.previousStatus}) continues from step ${result.retried.fromStep} (retry ${result.retried.retry}); now ${result.status}`);
  return 0;
}

async function cmdCancel(args: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { as: { type: 'string' }, reason: { type: 'string' } } });
  if (!positionals[0]) throw new CliError('usage: firebreak cancel <run-id> [--reason text]');
  const config = cliConfig();
  const result = expectOk(await api(config, 'POST', `/api/runs/${encodeURIComponent(positionals[0])}/cancel`, { ...(values.reason && { reason: values.reason }) }, asHeaders(config, values.as)), 'cancel') as RunJson & { cancelled: { previousStatus: string } };
  out(`cancelled: run ${result.id} (was ${result.cancelled.previousStatus}); nothing was compensated`);
  return 0;
}

async function cmdWhoami(): Promise<number> {
  const who = expectOk(await api(cliConfig(), 'GET', '/api/whoami'), 'whoami') as { id: string; method: string; verified: boolean; groups: string[]; mode: string };
  out(`${who.id} (${who.method}${who.verified ? '' : ', unverified'}; groups: ${who.groups.join(', ') || 'none from the credential'}; server in ${who.mode} mode)`);
  return 0;
}

type TokenJson = TokenRecord;

/**
 * The operator: whoever runs the CLI with the database credentials and no
 * FIREBREAK_TOKEN. How the first token is made (see docs/security.md).
 */
async function asOperator<T>(config: Config, fn: (access: Access, who: Identity, pool: ReturnType<typeof createPool>) => Promise<T>): Promise<T> {
  const name = (() => {
    try {
      const n = userInfo().username;
      return isValidName(n) ? n : 'unknown';
    } catch {
      return 'unknown';
    }
  })();
  const who = identity('operator', name);
  const policy = await createPolicyGate({ dir: config.policiesDir, logger: pino({ level: 'silent' }), watch: false });
  const loaded = await loadAuditKey({ material: config.auditKey, dataDir: config.dataDir, create: false }).catch(() => undefined);
  try {
    return await withDatabase(config, async (pool) => {
      await migrate(pool);
      // The decision and the token go on the access chain only under the server's audit key: events
      // hashed with another key would break the chain for `audit verify`.
      const key = loaded && (await keyVerifiesNewestEvent(pool, loaded.key)) ? loaded.key : undefined;
      const access = new Access({ pool, ...(key && { timeline: new Timeline(key, config.secrets.values()) }), policy: () => policy, mode: isLocalMode(config) ? 'local' : 'authenticated', logger: pino({ level: 'silent' }) });
      const result = await fn(access, who, pool);
      if (access.unrecorded > 0) {
        err(`warning: not written to the timeline: this CLI does not hold the server's audit key (set FIREBREAK_AUDIT_KEY, or FIREBREAK_DATA_DIR to the server's); the token's row records who (${who.id}) and when`);
      }
      return result;
    });
  } finally {
    await policy.close();
  }
}

/** Whether `key` hashed the newest event in the database (true when there is none yet, or only legacy ones). */
async function keyVerifiesNewestEvent(pool: ReturnType<typeof createPool>, key: AuditKey): Promise<boolean> {
  const { rows } = await pool.query<EventRow>('select id, chain_id, seq, run_id, time, kind, actor, data, prev_hash, hash from timeline_events order by id desc limit 1');
  if (!rows[0]) return true;
  const e = rowToEvent(rows[0]);
  const hashed = { chainId: e.chainId, seq: e.seq, runId: e.runId, time: e.time, kind: e.kind, actor: e.actor, data: e.data, prevHash: e.prevHash };
  return hashEvent(hashed, key) === e.hash || legacyHashEvent(hashed) === e.hash;
}

function printTokens(items: TokenJson[]): void {
  if (items.length === 0) return out('no tokens');
  out(table([['id', 'user', 'groups', 'state', 'expires', 'last used', 'created by'], ...items.map((t) => [t.id, t.user, t.groups.join(',') || '-', t.state, t.expiresAt ?? 'never', t.lastUsedAt ?? '-', t.createdBy])]));
}

async function cmdToken(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const config = cliConfig();
  const viaApi = Boolean(process.env.FIREBREAK_TOKEN?.trim());
  if (sub === 'create') {
    const { positionals, values } = parseArgs({ args: rest, allowPositionals: true, options: { ttl: { type: 'string' }, group: { type: 'string', multiple: true }, description: { type: 'string' } } });
    const user = positionals[0];
    if (!user || positionals.length > 1) throw new CliError('usage: firebreak token create <user> [--ttl 30d] [--group g]... [--description text]');
    const request = { user, groups: values.group ?? [], ...(values.ttl && { ttl: values.ttl }), ...(values.description && { description: values.description }) };
    const created = viaApi
      ? (expectOk(await api(config, 'POST', '/api/tokens', request), 'token create') as TokenJson & { token: string })
      : await asOperator(config, async (access, who) => {
          const { token, record } = await access.createToken(who, { user, groups: request.groups, ...(values.ttl && { ttlSeconds: parseTtl(values.ttl) }), ...(values.description && { description: values.description }) });
          return { token, ...record };
        });
    // The token alone on stdout (TOKEN=$(firebreak token create alice)); the rest on stderr.
    out(created.token);
    err(`created token ${created.id} for ${created.user}${created.groups.length ? ` (groups: ${created.groups.join(', ')})` : ''}, ${created.expiresAt ? `expires ${created.expiresAt}` : 'never expires'}, by ${created.createdBy}.`);
    err('It is shown only now: store it (e.g. as FIREBREAK_TOKEN). firebreak token revoke ' + created.id + ' ends it.');
    return 0;
  }
  if (sub === 'list') {
    const { values } = parseArgs({ args: rest, options: { all: { type: 'boolean' }, json: { type: 'boolean' }, user: { type: 'string' } } });
    const q = new URLSearchParams();
    if (values.all) q.set('all', 'true');
    if (values.user) q.set('user', values.user);
    const items = viaApi
      ? (expectOk(await api(config, 'GET', `/api/tokens?${q}`), 'token list') as { items: TokenJson[] }).items
      : await asOperator(config, (access, who) => access.listTokens(who, { includeInactive: values.all ?? false, ...(values.user && { user: values.user }) }));
    if (values.json) out(JSON.stringify({ items }, null, 2));
    else printTokens(items);
    return 0;
  }
  if (sub === 'revoke') {
    const { positionals } = parseArgs({ args: rest, allowPositionals: true, options: {} });
    const id = positionals[0];
    if (!id) throw new CliError('usage: firebreak token revoke <id>');
    const revoked = viaApi
      ? (expectOk(await api(config, 'DELETE', `/api/tokens/${encodeURIComponent(id)}`), 'token revoke') as TokenJson & { sessionsEnded: number })
      : await asOperator(config, async (access, who) => {
          const r = await access.revokeToken(who, id);
          return { ...r.record, sessionsEnded: r.sessionsEnded };
        });
    out(`revoked token ${revoked.id} of ${revoked.user}${revoked.sessionsEnded ? `; ${revoked.sessionsEnded} console session(s) ended` : ''}`);
    return 0;
  }
  throw new CliError('usage: firebreak token create <user> [--ttl 30d] [--group g]... | token list [--all] | token revoke <id>');
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
  // Throttling slows guessing per client; only length stops guessers spread over many addresses. (The value is never logged.)
  if (config.apiToken && config.apiToken.length < 32) app.logger.warn({ length: config.apiToken.length }, 'FIREBREAK_API_TOKEN is short: use at least 32 random characters (openssl rand -hex 32)');
  // Local mode trusts whoever reaches a loopback socket; a proxy forwarding a public name to it breaks that.
  if (isLocalMode(config) && !isLoopbackHost(new URL(config.publicUrl).hostname)) {
    app.logger.warn({ publicUrl: config.publicUrl }, 'local mode (no authentication configured) but FIREBREAK_PUBLIC_URL is not loopback: anyone a proxy lets in acts under any name they type; set FIREBREAK_API_TOKEN or OpenID Connect');
  }
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
        return await replayCommand(args, { api: (method, path, body, as) => api(config, method, path, body, asHeaders(config, as)), expectOk, fail: (m) => new CliError(m), out, err, playbooksDir: config.playbooksDir });
      }
      case 'test':
        return await cmdTest(args);
      case 'playbooks':
        return await cmdPlaybooks(args);
      case 'revisions':
        return await cmdRevisions(args);
      case 'approve':
      case 'reject':
        return await cmdAnswer(command, args);
      case 'abort':
        return await cmdAbort(args);
      case 'pause':
      case 'resume':
        return await cmdSwitch(command, args);
      case 'automation':
        return await cmdAutomation(args);
      case 'retry':
        return await cmdRetry(args);
      case 'cancel':
        return await cmdCancel(args);
      case 'timeline':
        return await cmdTimeline(args);
      case 'audit':
        return await cmdAudit(args);
      case 'token':
        return await cmdToken(args);
      case 'whoami':
        return await cmdWhoami();
      case 'silence': {
        const config = cliConfig();
        return await silenceCommand(args, { api: (method, path, body, as) => api(config, method, path, body, asHeaders(config, as)), expectOk, fail: (m, code) => new CliError(m, code), out });
      }
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
    // Typed failures carry a message written for the operator (audit key, migrations, embedded Postgres, access): no stack trace.
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
