/**
 * `firebreak replay --since <duration> --playbooks <dir> [--expect-same]`:
 * replay every alert episode first seen in the window against another folder
 * of playbooks, as dry runs, and say per episode where the result differs
 * from what happened: runs started or not, steps taken or skipped, policy
 * decisions, rendered requests. Each replay runs against its recorded run
 * (`asRecorded`, see src/engine/scripted.ts): recorded step results and
 * approval answers, recorded policy inputs, never a wait. `--expect-same`
 * exits 1 on any difference, so a pipeline can gate a playbook change on it.
 */
import { parseArgs } from 'node:util';
import { parseDuration } from '../actions/index.js';
import { diffRuns, formatDivergences, type Divergence } from './diff.js';
import { readPlaybookFolder, reportsOf, settle, type ReplayDeps } from './cli.js';
import type { RunJson, RunReport } from './report.js';

export const SINCE_USAGE = 'usage: firebreak replay --since <duration> [--playbooks <dir>] [--expect-same] [--as user] [--timeout 5m] [--json]   (--playbooks: default FIREBREAK_PLAYBOOKS)';

/** The parts of a GET /api/alerts item this needs. */
interface EpisodeJson {
  id: number;
  source: string;
  fingerprint: string;
  status: string;
  summary: string;
  firstSeenAt: string;
  runs: string[];
}

interface StartAnswer {
  items: Array<RunJson & { fingerprint: string | null }>;
  alerts: Array<{ note?: string }>;
}

/** One playbook's comparison on one episode: the recorded run, its replay, and where they differ. */
export interface ReplayPair {
  playbook: string;
  recorded: string | null;
  replay: string | null;
  /** null: one side has no run (see `recorded` / `replay`). */
  divergences: Divergence[] | null;
}

export interface EpisodeReplay {
  episode: number;
  source: string;
  fingerprint: string;
  summary: string;
  firstSeenAt: string;
  pairs: ReplayPair[];
  differs: boolean;
}

const PAGE = 500;

/** Episodes first seen in the window, oldest first (pages of GET /api/alerts). */
async function episodesSince(since: string, deps: ReplayDeps): Promise<EpisodeJson[]> {
  const all: EpisodeJson[] = [];
  let before: number | undefined;
  for (;;) {
    const q = new URLSearchParams({ since, limit: String(PAGE), ...(before !== undefined && { before: String(before) }) });
    const page = (deps.expectOk(await deps.api('GET', `/api/alerts?${q}`), 'list alert episodes') as { items: EpisodeJson[] }).items;
    all.push(...page);
    if (page.length < PAGE) break;
    before = Math.min(...page.map((e) => e.id));
  }
  return all.sort((a, b) => a.firstSeenAt.localeCompare(b.firstSeenAt) || a.id - b.id);
}

/** The recorded (real) runs of an episode, the latest per playbook. */
async function recordedRuns(episode: EpisodeJson, deps: ReplayDeps): Promise<Map<string, RunJson>> {
  const byPlaybook = new Map<string, RunJson & { createdAt?: string }>();
  for (const id of episode.runs) {
    const run = deps.expectOk(await deps.api('GET', `/api/runs/${encodeURIComponent(id)}`), 'read recorded run') as RunJson & { createdAt?: string };
    if (run.dryRun) continue;
    const seen = byPlaybook.get(run.playbook);
    if (!seen || (run.createdAt ?? '') > (seen.createdAt ?? '')) byPlaybook.set(run.playbook, run);
  }
  return byPlaybook;
}

const differs = (p: ReplayPair) => p.divergences === null || p.divergences.length > 0;

/** Replay one episode against the sent folder and compare each playbook's replay with its recorded run. */
async function replayEpisode(episode: EpisodeJson, sent: Array<{ file: string; source: string }>, opts: { as?: string; timeoutMs: number }, deps: ReplayDeps): Promise<EpisodeReplay> {
  const recorded = await recordedRuns(episode, deps);
  const body = { dryRun: true, episodeId: episode.id, playbooks: sent, asRecorded: true, noGather: true, noWait: true, quiet: true };
  const answer = deps.expectOk(await deps.api('POST', '/api/runs', body, opts.as), `replay of episode ${episode.id}`) as StartAnswer;
  const replays = new Map(answer.items.map((r) => [r.playbook, r]));
  const ids = [...replays.values()].map((r) => r.id);
  const runs = ids.length > 0 ? await settle(ids, opts.timeoutMs, deps) : new Map<string, RunJson>();
  for (const r of recorded.values()) runs.set(r.id, r);
  const reports: Map<string, RunReport> = await reportsOf([...ids, ...[...recorded.values()].map((r) => r.id)], runs, deps);
  const pairs: ReplayPair[] = [];
  for (const playbook of [...new Set([...recorded.keys(), ...replays.keys()])].sort()) {
    const was = recorded.get(playbook);
    const now = replays.get(playbook);
    pairs.push({
      playbook,
      recorded: was?.id ?? null,
      replay: now?.id ?? null,
      divergences: was && now ? diffRuns(reports.get(was.id)!, reports.get(now.id)!, 'recorded') : null,
    });
  }
  return { episode: episode.id, source: episode.source, fingerprint: episode.fingerprint, summary: episode.summary, firstSeenAt: episode.firstSeenAt, pairs, differs: pairs.some(differs) };
}

function printEpisode(e: EpisodeReplay, dir: string, deps: ReplayDeps): void {
  deps.out(`episode ${e.episode} ${e.source} ${e.fingerprint} "${e.summary}" (first seen ${e.firstSeenAt}): ${e.differs ? 'DIFFERS' : 'same'}`);
  if (e.pairs.length === 0) deps.out('  no playbook matched it then, and none in the folder matches it now');
  for (const p of e.pairs) {
    if (!p.recorded) {
      deps.out(`  ${p.playbook}: no run then; with ${dir} a run would start (replay ${p.replay})`);
    } else if (!p.replay) {
      deps.out(`  ${p.playbook}: run ${p.recorded} then; with ${dir} no run would start (the playbook is gone or no longer matches)`);
    } else {
      const n = p.divergences!.length;
      deps.out(`  ${p.playbook}: recorded run ${p.recorded}, replay ${p.replay}: ${n === 0 ? 'same' : `${n} difference(s)`}`);
      if (n > 0) deps.out(formatDivergences(p.divergences!, ['then:', 'now: ']));
    }
  }
}

export async function replaySince(args: string[], deps: ReplayDeps): Promise<number> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      since: { type: 'string' },
      playbooks: { type: 'string' },
      'expect-same': { type: 'boolean', default: false },
      as: { type: 'string' },
      timeout: { type: 'string', default: '5m' },
      json: { type: 'boolean', default: false },
    },
  });
  const dir = values.playbooks ?? deps.playbooksDir;
  if (positionals.length > 0 || !values.since || !dir) throw deps.fail(SINCE_USAGE);
  const duration = (option: string, value: string): number => {
    try {
      return parseDuration(value);
    } catch {
      throw deps.fail(`${option} must be a duration like 30m, 1h, 24h or 7d (got "${value}")`);
    }
  };
  duration('--since', values.since);
  const timeoutMs = duration('--timeout', values.timeout!);
  const sent = await readPlaybookFolder(dir, deps, '--playbooks');
  const episodes = await episodesSince(values.since, deps);
  deps.err(`replaying ${episodes.length} alert episode(s) first seen in the last ${values.since} against ${dir} (${sent.length} playbook file(s)), as dry runs`);
  const results: EpisodeReplay[] = [];
  for (const [i, episode] of episodes.entries()) {
    deps.err(`[${i + 1}/${episodes.length}] episode ${episode.id} ${episode.source} "${episode.summary}" (${episode.runs.length} recorded run(s))`);
    const result = await replayEpisode(episode, sent, { ...(values.as && { as: values.as }), timeoutMs }, deps);
    results.push(result);
    if (!values.json) printEpisode(result, dir, deps);
  }
  const differing = results.filter((r) => r.differs);
  if (values.json) deps.out(JSON.stringify({ since: values.since, playbooks: dir, episodes: results, differing: differing.length }, null, 2));
  const summary = `${results.length} episode(s) replayed against ${dir}: ${results.length - differing.length} the same, ${differing.length} different`;
  if (values['expect-same'] && differing.length > 0) {
    deps.err(`${summary}; --expect-same: failing (episodes ${differing.map((r) => r.episode).join(', ')})`);
    return 1;
  }
  deps.err(summary);
  return 0;
}
