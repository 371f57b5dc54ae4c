/**
 * `/firebreak run <playbook> [key=value...]`, `status [run]`, `abort <run>`.
 * Every answer is ephemeral (only the person who typed it sees it); what the
 * command does shows up in the run's thread like anything else.
 */
import type { Logger } from 'pino';
import { getRun, type Engine, type RunView } from '../engine/index.js';
import { ConflictError, NotFoundError, ValidationError, coerceError } from '../errors.js';
import type { PolicyGate } from '../policy/index.js';
import { withTransaction, type Pool } from '../store/index.js';
import type { Timeline } from '../timeline/index.js';
import * as Q from './queries.js';
import { COMMAND_HELP, escapeText, runUrl, truncate } from './render.js';

/** Who may abort a run from Slack (besides whoever started it and the approvers of its pending approvals). */
export const ABORT_APPROVERS = ['group:sre', 'group:oncall'];

export interface CommandDeps {
  pool: Pool;
  engine: Engine;
  timeline: Timeline;
  policy: () => PolicyGate;
  logger: Logger;
  publicUrl: string;
  now?: () => number;
}

export interface CommandResponse {
  response_type: 'ephemeral';
  text: string;
}

const reply = (text: string): CommandResponse => ({ response_type: 'ephemeral', text: truncate(text, 3_000) });

/** Split command text into words; "double", 'single' and Slack's “smart” quotes group words. */
export function tokenize(text: string): string[] {
  const words: string[] = [];
  const re = /(?:[^\s"'“”‘’]+|"[^"]*"|'[^']*'|“[^”]*”|‘[^’]*’)+/g;
  for (const match of text.matchAll(re)) words.push(match[0].replace(/["'“”‘’]/g, ''));
  return words;
}

export interface RunCommand {
  playbook: string;
  params: Record<string, string>;
  dryRun: boolean;
}

/** `run <playbook> [key=value...] [--dry-run]`; values stay strings (the playbook converts what it needs). */
export function parseRunCommand(args: string[]): RunCommand {
  const [playbook, ...rest] = args;
  if (!playbook) throw new ValidationError('usage: /firebreak run <playbook> [key=value ...] [--dry-run]', [{ path: 'playbook', message: 'required' }]);
  const params: Record<string, string> = {};
  let dryRun = false;
  for (const word of rest) {
    if (word === '--dry-run' || word === '--dry') {
      dryRun = true;
      continue;
    }
    const eq = word.indexOf('=');
    if (eq <= 0) throw new ValidationError(`"${word}" is not key=value`, [{ path: word, message: 'expected key=value' }]);
    const key = word.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key)) throw new ValidationError(`"${key}" is not a valid parameter name`, [{ path: key, message: 'letters, digits, _ . -' }]);
    params[key] = word.slice(eq + 1);
  }
  return { playbook, params, dryRun };
}

const STATUS_ICON: Record<string, string> = {
  queued: '⏸',
  running: '▶️',
  waiting: '⏳',
  succeeded: '✅',
  failed: '💥',
  aborted: '🛑',
  cancelled: '🚫',
  pending: '·',
  skipped: '⏭',
  denied: '⛔',
  compensated: '↩️',
};

/** A full run id from an id or a unique prefix (8+ characters), as people paste them. */
async function resolveRunId(pool: Pool, text: string | undefined): Promise<string> {
  const id = (text ?? '').trim().toLowerCase();
  if (!id) throw new ValidationError('which run? give its id (or the first 8 characters of it)', [{ path: 'run', message: 'required' }]);
  if (!/^[0-9a-f-]{8,36}$/.test(id)) throw new NotFoundError(`no run ${id}`);
  const { rows } = await pool.query<{ id: string }>(Q.RUN_IDS_BY_PREFIX, [id]);
  if (rows.length === 0) throw new NotFoundError(`no run ${id}`);
  if (rows.length > 1) throw new ValidationError(`${id} matches more than one run; give more of the id`, [{ path: 'run', message: 'ambiguous' }]);
  return rows[0]!.id;
}

export async function handleCommand(deps: CommandDeps, input: { text: string; userId: string }): Promise<CommandResponse> {
  const user = `slack:${input.userId}`;
  const [verb, ...args] = tokenize(input.text ?? '');
  try {
    switch ((verb ?? '').toLowerCase()) {
      case 'run':
        return await runCommand(deps, user, args);
      case 'status':
        return await statusCommand(deps, args[0]);
      case 'abort':
        return await abortCommand(deps, user, args[0], args.slice(1).join(' '));
      case '':
      case 'help':
        return reply(COMMAND_HELP);
      default:
        return reply(`Unknown command \`${escapeText(verb ?? '')}\`.\n${COMMAND_HELP}`);
    }
  } catch (err) {
    if (err instanceof ValidationError || err instanceof NotFoundError || err instanceof ConflictError) return reply(`⚠️ ${escapeText(err.message)}`);
    deps.logger.error({ err: coerceError(err).message, command: verb }, 'slash command failed');
    return reply('⚠️ Firebreak could not do that right now (see its logs); nothing was changed.');
  }
}

async function runCommand(deps: CommandDeps, user: string, args: string[]): Promise<CommandResponse> {
  const cmd = parseRunCommand(args);
  const { runId } = await deps.engine.startRun({ playbook: cmd.playbook, params: cmd.params, startedBy: user, trigger: 'manual', dryRun: cmd.dryRun });
  return reply(`${cmd.dryRun ? '🧪 Dry run' : '▶️ Run'} <${runUrl(deps.publicUrl, runId)}|${runId}> of *${escapeText(cmd.playbook)}* started. Progress goes to the run's thread.`);
}

function describeRun(run: RunView, publicUrl: string): string {
  const lines = [
    `${STATUS_ICON[run.status] ?? ''} <${runUrl(publicUrl, run.id)}|${run.id}> *${escapeText(run.playbook)}*${run.dryRun ? ' (dry run)' : ''}: *${run.status}*`,
    `trigger ${run.trigger}${run.startedBy ? `, started by ${escapeText(run.startedBy)}` : ''}${run.startedAt ? `, started ${run.startedAt}` : ''}${run.finishedAt ? `, finished ${run.finishedAt}` : ''}`,
  ];
  for (const s of run.steps) lines.push(`${STATUS_ICON[s.status] ?? '·'} \`${escapeText(s.id)}\` ${escapeText(s.action)}: ${s.status}${s.attempts > 1 ? ` (${s.attempts} attempts)` : ''}`);
  for (const a of run.approvals.filter((x) => x.status === 'pending')) {
    lines.push(`🔐 approval \`${a.id}\` for \`${escapeText(a.stepId)}\` is waiting (expires ${a.expiresAt ?? 'never'})`);
  }
  if (run.abortReason) lines.push(`reason: ${escapeText(run.abortReason)}`);
  return lines.join('\n');
}

async function statusCommand(deps: CommandDeps, runArg: string | undefined): Promise<CommandResponse> {
  if (runArg) return reply(describeRun(await getRun(deps.pool, await resolveRunId(deps.pool, runArg)), deps.publicUrl));
  const { rows } = await deps.pool.query<{ id: string; playbook: string; status: string; dry_run: boolean; created_at: Date; pending_approvals: number }>(Q.ACTIVE_RUNS);
  if (rows.length === 0) return reply('No active runs.');
  const lines = rows.map(
    (r) =>
      `${STATUS_ICON[r.status] ?? ''} <${runUrl(deps.publicUrl, r.id)}|${r.id.slice(0, 8)}> *${escapeText(r.playbook)}*${r.dry_run ? ' (dry run)' : ''}: ${r.status}${r.pending_approvals > 0 ? `, ${r.pending_approvals} approval(s) waiting` : ''} (since ${r.created_at.toISOString().slice(0, 19)}Z)`,
  );
  return reply(`*Active runs*\n${lines.join('\n')}`);
}

/**
 * Abort goes through `firebreak/approve`, as an answer of "reject" to a
 * request whose approvers are ABORT_APPROVERS, whoever started the run, and
 * the approvers of its pending approvals: the people who could stop it by
 * rejecting anyway. The verdict is written to the run's timeline either way.
 */
async function abortCommand(deps: CommandDeps, user: string, runArg: string | undefined, reason: string): Promise<CommandResponse> {
  const runId = await resolveRunId(deps.pool, runArg);
  const run = await getRun(deps.pool, runId);
  if (!['queued', 'running', 'waiting'].includes(run.status)) return reply(`Run ${runId} already finished (${run.status}).`);
  const pending = run.approvals.filter((a) => a.status === 'pending');
  const approvers = [...new Set([...ABORT_APPROVERS, ...(run.startedBy ? [run.startedBy] : []), ...pending.flatMap((a) => a.approvers)])];
  const verdict = await deps
    .policy()
    .approve({
      approval: {
        id: `abort:${runId}`,
        run_id: runId,
        step_id: pending[0]?.stepId ?? '(run)',
        approvers,
        min_approvals: 1,
        started_by: run.startedBy,
        playbook: run.playbook,
        action: 'run.abort',
        impact: 'high',
        decision: 'reject',
        already_approved_by: [],
      },
      user,
      now: new Date((deps.now ?? Date.now)()).toISOString(),
    })
    .catch((err) => ({ result: { allow: false, reason: `policy evaluation failed: ${coerceError(err).message}` }, bundleHash: 'unknown', inputHash: 'unknown', error: coerceError(err).message }));
  await withTransaction(deps.pool, async (client) => {
    await deps.timeline.lockRun(client, runId);
    await deps.timeline.appendToRun(client, runId, {
      kind: verdict.result.allow ? 'run.abort_allowed' : 'run.abort_refused',
      actor: user,
      data: { entrypoint: 'firebreak/approve', allow: verdict.result.allow, reason: verdict.result.reason, approvers, bundleHash: verdict.bundleHash, inputHash: verdict.inputHash, ...(verdict.error && { error: verdict.error }) },
    });
  });
  if (!verdict.result.allow) return reply(`⛔ You may not abort run ${runId}: ${escapeText(verdict.result.reason)}`);
  const result = await deps.engine.abortRun(runId, user, reason || undefined);
  return reply(`🛑 Run <${runUrl(deps.publicUrl, runId)}|${runId}> ${result.status === 'aborted' ? 'aborted' : 'is aborting (compensating completed steps)'}.`);
}
