/**
 * `/firebreak run <playbook> [key=value...]`, `status [run]`, `abort <run>`.
 * Every answer is ephemeral (only the person who typed it sees it); what the
 * command does shows up in the run's thread like anything else.
 */
import type { Logger } from 'pino';
import { identity, type Access, type Identity } from '../access/index.js';
import { getRun, type Engine, type RunView } from '../engine/index.js';
import { AccessDeniedError, ConflictError, NotFoundError, ValidationError, coerceError } from '../errors.js';
import type { Automation } from '../rails/index.js';
import type { Pool } from '../store/index.js';
import type { Silences } from '../rails/index.js';
import * as Q from './queries.js';
import { COMMAND_HELP, escapeText, runUrl, truncate } from './render.js';
import { silenceCommand } from './silence-command.js';

/**
 * The identity of a signed Slack request: the user id Slack vouches for
 * (Bolt verified the signature). Policy data says whose it is.
 */
export function slackIdentity(userId: string): Identity {
  return identity('slack', userId);
}

export interface CommandDeps {
  pool: Pool;
  engine: Engine;
  access: Access;
  /** Absent: `/firebreak silence` says silences are not available. */
  silences?: Silences;
  logger: Logger;
  publicUrl: string;
  automation?: Automation;
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
  const user = slackIdentity(input.userId);
  const [verb, ...args] = tokenize(input.text ?? '');
  try {
    switch ((verb ?? '').toLowerCase()) {
      case 'run':
        return await runCommand(deps, user, args);
      case 'status':
        return await statusCommand(deps, args[0]);
      case 'abort':
        return await abortCommand(deps, user, args[0], args.slice(1).join(' '));
      case 'pause':
      case 'resume':
        return await switchCommand(deps, user, verb!.toLowerCase() as 'pause' | 'resume', args);
      case 'silence':
        // The raw text: matchers keep their quotes (tokenize drops them).
        return reply(await silenceCommand(deps.silences, user, (input.text ?? '').trim().replace(/^\S+/, ''), escapeText));
      case '':
      case 'help':
        return reply(COMMAND_HELP);
      default:
        return reply(`Unknown command \`${escapeText(verb ?? '')}\`.\n${COMMAND_HELP}`);
    }
  } catch (err) {
    if (err instanceof AccessDeniedError) return reply(`⛔ You may not ${verb === 'abort' ? 'abort that run' : verb === 'run' ? 'start that playbook' : verb === 'pause' || verb === 'resume' ? `${verb} automation` : verb === 'silence' ? 'manage silences' : 'do that'}: ${escapeText(err.reasons.join('; '))}`);
    if (err instanceof ValidationError || err instanceof NotFoundError || err instanceof ConflictError) return reply(`⚠️ ${escapeText(err.message)}`);
    deps.logger.error({ err: coerceError(err).message, command: verb }, 'slash command failed');
    return reply('⚠️ Firebreak could not do that right now (see its logs); nothing was changed.');
  }
}

async function runCommand(deps: CommandDeps, user: Identity, args: string[]): Promise<CommandResponse> {
  const cmd = parseRunCommand(args);
  deps.engine.findPlaybook(cmd.playbook); // "not found" before asking the policy
  const { runId } = await deps.access.startRun(deps.engine, user, { playbook: cmd.playbook, params: cmd.params, trigger: 'manual', dryRun: cmd.dryRun });
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

/** Abort as the Slack user: asked of `firebreak/authorize` (run.abort), the verdict written to the run's timeline either way. */
async function abortCommand(deps: CommandDeps, user: Identity, runArg: string | undefined, reason: string): Promise<CommandResponse> {
  const runId = await resolveRunId(deps.pool, runArg);
  const run = await getRun(deps.pool, runId);
  if (!['queued', 'running', 'waiting'].includes(run.status)) return reply(`Run ${runId} already finished (${run.status}).`);
  const result = await deps.access.abortRun(deps.engine, user, runId, reason || undefined);
  return reply(`🛑 Run <${runUrl(deps.publicUrl, runId)}|${runId}> ${result.status === 'aborted' ? 'aborted' : 'is aborting (compensating completed steps)'}.`);
}

/**
 * `/firebreak pause [playbook] <reason...>` and `/firebreak resume [playbook] [reason...]`:
 * the first word names a playbook only when one by that name is loaded; otherwise it starts the reason.
 */
async function switchCommand(deps: CommandDeps, user: Identity, verb: 'pause' | 'resume', args: string[]): Promise<CommandResponse> {
  if (!deps.automation) return reply('⚠️ The kill switch is not available on this replica.');
  let playbook: string | null = null;
  const named = args[0] ? playbookNamed(deps, deps.automation, args[0]) : undefined;
  if (named) {
    playbook = named;
    args.shift();
  }
  const reason = args.join(' ').trim();
  const scope = playbook ? `playbook *${escapeText(playbook)}*` : '*all automation*';
  if (verb === 'pause') {
    if (!reason) throw new ValidationError('say why: /firebreak pause [playbook] <reason>', [{ path: 'reason', message: 'required' }]);
    const { pause, alreadyPaused } = await deps.automation.pause(user, { playbook, reason });
    if (alreadyPaused) return reply(`⏸ ${scope} was already paused by ${escapeText(pause.pausedBy)} at ${pause.pausedAt}: ${escapeText(pause.reason)}`);
    return reply(`⏸ Paused ${scope}: no run starts and no further step starts until someone resumes it (\`/firebreak resume${playbook ? ` ${escapeText(playbook)}` : ''}\`).`);
  }
  const { resumed, stillPaused } = await deps.automation.resume(user, { playbook, ...(reason && { reason }) });
  const others = stillPaused.map((p) => (p.playbook ? `playbook ${escapeText(p.playbook)}` : 'all automation')).join(', ');
  if (!resumed) return reply(`${scope} was not paused.${others ? ` Still paused: ${others}.` : ''}`);
  return reply(`▶️ Resumed ${scope}; held runs go on.${others ? ` Still paused: ${others}.` : ''}`);
}

/**
 * The playbook a word names: a loaded one, or one with an open pause (its
 * file may be gone, and only a resume by name ends that pause). Names are
 * [a-z0-9-], so `Checkout-Restart` typed in Slack means checkout-restart:
 * read as the start of a reason it would pause, or worse resume, ALL automation.
 */
function playbookNamed(deps: CommandDeps, automation: Automation, word: string): string | undefined {
  const lower = word.toLowerCase();
  if (automation.pauses.some((p) => p.playbook === lower)) return lower;
  return deps.engine.hasPlaybook(lower) ? lower : undefined;
}
