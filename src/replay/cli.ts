/**
 * `firebreak replay <alert.json | episode id> [--playbook name] [--no-gather]
 * [--source alertmanager] [--diff <playbooks-dir>]`: dry-run an alert through
 * the running server (like the other CLI commands), wait until the runs
 * settle, print what each step did or would do, and with --diff where the
 * server's playbooks and another folder's diverge.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../actions/index.js';
import { ALERT_SOURCES } from '../ingest/index.js';
import { diffRuns, formatDivergences } from './diff.js';
import { replaySince } from './since.js';
import { buildReport, formatReport, isSettled, type RunJson, type RunReport, type TimelineJson } from './report.js';

export interface ReplayApiResponse {
  status: number;
  body: unknown;
  text: string;
}

export interface ReplayDeps {
  /** `as`: the name `--as` claims (local mode only; the server refuses it otherwise). */
  api(method: 'GET' | 'POST', path: string, body?: unknown, as?: string): Promise<ReplayApiResponse>;
  /** The body of a 2xx answer; throws the CLI's error otherwise. */
  expectOk(res: ReplayApiResponse, what: string): unknown;
  /** An error the CLI prints as is (exit 1). */
  fail(message: string): Error;
  out(text: string): void;
  err(text: string): void;
  sleep?(ms: number): Promise<void>;
  /** FIREBREAK_PLAYBOOKS: what `replay --since` replays against when no --playbooks is given. */
  playbooksDir?: string;
}

export const REPLAY_USAGE =
  'usage: firebreak replay <alert.json | episode-id> [--playbook name] [--no-gather] [--source alertmanager] [--diff <playbooks-dir>] [--stub json] [--stubs json] [--as user] [--timeout 5m] [--json]\n' +
  '       firebreak replay --since <duration> --playbooks <dir> [--expect-same] [--as user] [--timeout 5m] [--json]';

interface StartAnswer {
  items: Array<RunJson & { matched: boolean; fingerprint: string | null }>;
  alerts: Array<{ source: string; fingerprint: string; status: string; summary: string; runs: Array<{ playbook: string; runId: string; matched: boolean }>; note?: string }>;
}

async function jsonArg(value: string | undefined, name: string, deps: ReplayDeps): Promise<unknown> {
  if (value === undefined) return undefined;
  const text = value.startsWith('@') ? await readFile(value.slice(1), 'utf8').catch((e: Error) => Promise.reject(deps.fail(`--${name}: cannot read ${value.slice(1)}: ${e.message}`))) : value;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw deps.fail(`--${name} must be JSON (or @file): ${(e as Error).message}`);
  }
}

function looksNormalised(alert: unknown): boolean {
  return Boolean(alert && typeof alert === 'object' && 'source' in alert && 'fingerprint' in alert && 'labels' in alert && 'startsAt' in alert);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Playbook files of a folder, as sent to the server; `option` names the flag in errors. */
export async function readPlaybookFolder(dir: string, deps: Pick<ReplayDeps, 'fail'>, option = '--diff'): Promise<Array<{ file: string; source: string }>> {
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && /\.ya?ml$/i.test(e.name)).map((e) => e.name).sort();
  } catch (e) {
    throw deps.fail(`${option}: cannot read the playbooks folder ${dir}: ${(e as Error).message}`);
  }
  if (names.length === 0) throw deps.fail(`${option}: no playbook files (*.yaml) in ${dir}`);
  return Promise.all(names.map(async (file) => ({ file, source: await readFile(join(dir, file), 'utf8') })));
}

const short = (id: string) => id.slice(0, 8);

export async function settle(ids: string[], timeoutMs: number, deps: ReplayDeps): Promise<Map<string, RunJson>> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const runs = new Map<string, RunJson>();
  const started = Date.now();
  let lastProgress = started;
  for (;;) {
    for (const id of ids) {
      if (runs.has(id) && isSettled(runs.get(id)!)) continue;
      runs.set(id, deps.expectOk(await deps.api('GET', `/api/runs/${encodeURIComponent(id)}`), 'read run') as RunJson);
    }
    const open = ids.filter((id) => !isSettled(runs.get(id)!));
    if (open.length === 0) return runs;
    if (Date.now() - started >= timeoutMs) {
      deps.err(`${open.length} dry run(s) still running after ${Math.round(timeoutMs / 1000)} s; showing them as they are (follow with firebreak run <id>)`);
      return runs;
    }
    if (Date.now() - lastProgress >= 3_000) {
      lastProgress = Date.now();
      const what = open.map((id) => {
        const r = runs.get(id)!;
        const step = r.steps.find((s) => s.status === 'running' || s.status === 'pending');
        return `${short(id)} ${r.playbook} ${r.status}${step ? ` at ${step.id}` : ''}`;
      });
      deps.err(`waiting for ${open.length} dry run(s) to settle (${Math.round((Date.now() - started) / 1000)} s): ${what.join('; ')}`);
    }
    await sleep(250);
  }
}

export async function reportsOf(ids: string[], runs: Map<string, RunJson>, deps: ReplayDeps): Promise<Map<string, RunReport>> {
  const out = new Map<string, RunReport>();
  for (const id of ids) {
    const timeline = deps.expectOk(await deps.api('GET', `/api/runs/${encodeURIComponent(id)}/timeline?format=json`), 'read timeline') as TimelineJson;
    out.set(id, buildReport(runs.get(id)!, timeline));
  }
  return out;
}

function printAlerts(answer: StartAnswer, deps: ReplayDeps, label = ''): void {
  for (const a of answer.alerts) {
    const runs = a.runs.map((r) => `${r.playbook} (${short(r.runId)})${r.matched ? '' : ' [named, does not match]'}`).join(', ');
    deps.out(`${label}alert ${a.source} ${a.fingerprint} [${a.status}] "${a.summary}": ${runs || 'no dry run'}${a.note ? ` — ${a.note}` : ''}`);
  }
}

export async function replayCommand(args: string[], deps: ReplayDeps): Promise<number> {
  if (args.some((a) => a === '--since' || a.startsWith('--since='))) return replaySince(args, deps);
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      playbook: { type: 'string' },
      'no-gather': { type: 'boolean', default: false },
      source: { type: 'string' },
      diff: { type: 'string' },
      stub: { type: 'string' },
      stubs: { type: 'string' },
      as: { type: 'string' },
      timeout: { type: 'string', default: '5m' },
      json: { type: 'boolean', default: false },
    },
  });
  const target = positionals[0];
  if (!target || positionals.length > 1) throw deps.fail(REPLAY_USAGE);
  if (values.source && !(ALERT_SOURCES as readonly string[]).includes(values.source)) {
    throw deps.fail(`--source must be one of ${ALERT_SOURCES.join(', ')}`);
  }
  let timeoutMs: number;
  try {
    timeoutMs = parseDuration(values.timeout!);
  } catch (e) {
    throw deps.fail(`--timeout: ${(e as Error).message}`);
  }

  const body: Record<string, unknown> = {
    dryRun: true,
    ...(values.playbook && { playbook: values.playbook }),
    ...(values['no-gather'] && { noGather: true }),
  };
  const stub = await jsonArg(values.stub, 'stub', deps);
  const stubs = await jsonArg(values.stubs, 'stubs', deps);
  if (stub !== undefined) body.stub = stub;
  if (stubs !== undefined) body.stubs = stubs;

  if (await isFile(target)) {
    let alert: unknown;
    try {
      alert = JSON.parse(await readFile(target, 'utf8'));
    } catch (e) {
      throw deps.fail(`cannot read ${target}: ${(e as Error).message}`);
    }
    body.alert = alert;
    // A normalised alert (as stored) names its source; a raw payload is from --source (default alertmanager, like `fire`).
    if (values.source || !looksNormalised(alert)) body.source = values.source ?? 'alertmanager';
  } else if (/^\d+$/.test(target)) {
    body.episodeId = Number(target);
  } else {
    throw deps.fail(`${target} is neither an alert file nor an episode id (see GET /api/alerts)\n${REPLAY_USAGE}`);
  }

  const sent = values.diff ? await readPlaybookFolder(values.diff, deps) : undefined;
  // The other folder first: if the server refuses its playbooks, nothing was started.
  const b = sent ? (deps.expectOk(await deps.api('POST', '/api/runs', { ...body, playbooks: sent }, values.as), `replay against ${values.diff}`) as StartAnswer) : undefined;
  const a = deps.expectOk(await deps.api('POST', '/api/runs', body, values.as), 'replay') as StartAnswer;

  const ids = [...a.items, ...(b?.items ?? [])].map((r) => r.id);
  const runs = ids.length > 0 ? await settle(ids, timeoutMs, deps) : new Map<string, RunJson>();
  const reports = await reportsOf(ids, runs, deps);

  if (values.json) {
    const json = {
      alerts: a.alerts,
      runs: a.items.map((r) => reports.get(r.id)),
      ...(b && {
        diff: {
          dir: values.diff,
          alerts: b.alerts,
          runs: b.items.map((r) => reports.get(r.id)),
          divergences: pairs(a, b).map(([x, y]) => ({ playbook: (x ?? y)!.playbook, fingerprint: (x ?? y)!.fingerprint, a: x?.id ?? null, b: y?.id ?? null, divergences: x && y ? diffRuns(reports.get(x.id)!, reports.get(y.id)!) : null })),
        },
      }),
    };
    deps.out(JSON.stringify(json, null, 2));
    return 0;
  }

  printAlerts(a, deps);
  for (const r of a.items) {
    deps.out('');
    deps.out(formatReport(reports.get(r.id)!));
  }
  if (b) {
    deps.out('');
    deps.out(`=== diff: A = the server's playbooks, B = ${values.diff} ===`);
    printAlerts(b, deps, 'B: ');
    for (const [x, y] of pairs(a, b)) {
      const playbook = (x ?? y)!.playbook;
      const fp = (x ?? y)!.fingerprint;
      deps.out('');
      deps.out(`  ${playbook}${fp ? ` on alert ${fp}` : ''}: A ${x ? `run ${x.id}` : '(no run)'}, B ${y ? `run ${y.id}` : '(no run)'}`);
      if (!x || !y) {
        deps.out(`    the playbook ${x ? 'does not match (or does not exist) in B' : 'matches only in B'}`);
        continue;
      }
      deps.out(formatDivergences(diffRuns(reports.get(x.id)!, reports.get(y.id)!)));
    }
  }
  return 0;
}

/** Runs of A and B paired by alert and playbook; a run with no partner pairs with undefined. */
function pairs(a: StartAnswer, b: StartAnswer): Array<[StartAnswer['items'][number] | undefined, StartAnswer['items'][number] | undefined]> {
  const key = (r: StartAnswer['items'][number]) => `${r.fingerprint ?? ''}\u0000${r.playbook}`;
  const bByKey = new Map(b.items.map((r) => [key(r), r]));
  const out: Array<[StartAnswer['items'][number] | undefined, StartAnswer['items'][number] | undefined]> = [];
  for (const x of a.items) {
    out.push([x, bByKey.get(key(x))]);
    bByKey.delete(key(x));
  }
  for (const y of bByKey.values()) out.push([undefined, y]);
  return out;
}
