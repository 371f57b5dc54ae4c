/**
 * Block Kit for what Firebreak posts: a run's first message (alert and
 * context), its thread lines, and approval messages with their buttons.
 * Pure functions of the recorded data, so the same input renders the same
 * message on any replica, now or after a retry.
 */
import { formatDuration, unhandledKind, type TimelineEvent } from '../timeline/index.js';

/** Action ids of the approval buttons; each button's value is the approval id. */
export const APPROVE_ACTION = 'firebreak_approve';
export const REJECT_ACTION = 'firebreak_reject';

export type Block = Record<string, unknown>;
export interface Rendered {
  text: string;
  blocks?: Block[];
}

export interface RunInfo {
  id: string;
  playbook: string;
  trigger: string;
  startedBy: string | null;
  dryRun: boolean;
  alert: AlertInfo | null;
  params: Record<string, unknown>;
  createdAt: Date;
}

export interface AlertInfo {
  source?: string;
  summary?: string;
  severity?: string;
  status?: string;
  startsAt?: string;
  labels?: Record<string, string>;
  generatorURL?: string;
}

export interface ApprovalInfo {
  id: string;
  stepId: string;
  round: number;
  action: string;
  impact: string;
  params: unknown;
  reasons: string[];
  approvers: string[];
  minApprovals: number;
  onTimeout: string;
  expiresAt: Date | null;
}

/** How an approval ended (or where its votes stand), for the updated message. */
export type ApprovalState =
  | { kind: 'pending'; votes: string[] }
  | { kind: 'approved' | 'rejected'; by: string; at: Date }
  | { kind: 'expired'; at: Date; onTimeout: string; escalateTo?: string[] }
  | { kind: 'cancelled'; at: Date; by: string; reason: string };

const SECTION_LIMIT = 2900;

/** Slack's mrkdwn control characters; everything we did not write ourselves goes through this. */
export function escapeText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * A link to a URL that came with an alert (generatorURL): only http(s), and
 * with `|`, `<`, `>` encoded so the URL cannot end the link early and supply
 * its own label (`<https://evil|Open Firebreak>`). The label is always ours.
 */
export function safeLink(url: string, label: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined;
  const href = parsed.toString().replace(/&/g, '&amp;').replace(/</g, '%3C').replace(/>/g, '%3E').replace(/\|/g, '%7C');
  return `<${href}|${escapeText(label)}>`;
}

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** `slack:U123` mentions the person; other actors are shown as written. */
export function actorLabel(actor: string | null | undefined): string {
  if (!actor) return 'someone';
  const slack = /^slack:([A-Z0-9]+)$/i.exec(actor);
  if (slack) return `<@${slack[1]}>`;
  if (actor === 'system') return 'Firebreak';
  return escapeText(actor);
}

export function approverLabel(entry: string): string {
  if (entry.startsWith('group:')) return `group *${escapeText(entry.slice(6))}*`;
  return actorLabel(entry);
}

export function utc(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function codeBlock(value: unknown, max: number): string {
  let text: string;
  try {
    text = typeof value === 'string' ? value : (JSON.stringify(value, null, 2) ?? 'null');
  } catch {
    text = String(value);
  }
  // Triple backticks inside would end the block early; Slack reads <...> even in code blocks.
  return `\`\`\`${escapeText(truncate(text.replace(/```/g, '`\u200b``'), max))}\`\`\``;
}

const section = (text: string): Block => ({ type: 'section', text: { type: 'mrkdwn', text: truncate(text, SECTION_LIMIT) } });
const context = (...texts: string[]): Block => ({ type: 'context', elements: texts.filter(Boolean).map((t) => ({ type: 'mrkdwn', text: truncate(t, 2_000) })) });
const header = (text: string): Block => ({ type: 'header', text: { type: 'plain_text', text: truncate(text, 150), emoji: true } });
const fields = (pairs: Array<[string, string]>): Block => ({
  type: 'section',
  fields: pairs.slice(0, 10).map(([k, v]) => ({ type: 'mrkdwn', text: truncate(`*${k}*\n${v}`, 1_900) })),
});

export function runUrl(publicUrl: string, runId: string): string {
  return `${publicUrl}/runs/${runId}`;
}

const DRY_RUN_NOTE = '🧪 *Dry run*: side-effecting steps are recorded as “would call” and not executed.';

export type RunOutcome = { status: 'succeeded' | 'failed' | 'aborted' | 'cancelled'; reason?: string; durationMs?: number; at: Date } | null;

const OUTCOME_ICON: Record<string, string> = { succeeded: '✅', failed: '💥', aborted: '🛑', cancelled: '🚫' };

/** The run's one message in its channel: the alert and context; progress goes in its thread. */
export function renderRunMessage(run: RunInfo, publicUrl: string, outcome: RunOutcome = null): Rendered {
  const alert = run.alert;
  const summary = alert?.summary || (run.trigger === 'alert' ? 'alert' : `${run.trigger} run`);
  const dry = run.dryRun ? '[DRY RUN] ' : '';
  const blocks: Block[] = [header(`${run.dryRun ? '🧪' : '🔥'} ${dry}${run.playbook}`)];
  if (run.dryRun) blocks.push(section(DRY_RUN_NOTE));
  blocks.push(section(`*${escapeText(summary)}*`));
  const facts: Array<[string, string]> = [];
  if (alert?.severity) facts.push(['Severity', escapeText(alert.severity)]);
  if (alert?.source) facts.push(['Source', escapeText(alert.source)]);
  if (alert?.status) facts.push(['Alert', escapeText(alert.status)]);
  if (alert?.startsAt) facts.push(['Since', utc(new Date(alert.startsAt))]);
  facts.push(['Trigger', escapeText(run.trigger)]);
  if (run.startedBy) facts.push(['Started by', actorLabel(run.startedBy)]);
  blocks.push(fields(facts));
  const labels = Object.entries(alert?.labels ?? {});
  if (labels.length > 0) blocks.push(section(`*Labels*\n${codeBlock(labels.map(([k, v]) => `${k}=${v}`).join('\n'), 1_500)}`));
  if (Object.keys(run.params).length > 0) blocks.push(section(`*Parameters*\n${codeBlock(run.params, 1_500)}`));
  if (outcome) {
    const took = outcome.durationMs !== undefined ? ` in ${formatDuration(outcome.durationMs)}` : '';
    const why = outcome.reason ? `: ${escapeText(outcome.reason)}` : '';
    blocks.push(section(`${OUTCOME_ICON[outcome.status] ?? ''} *Run ${outcome.status}*${took}${why} (${utc(outcome.at)})`));
  } else {
    blocks.push(section('⏳ *Running*: progress in the thread.'));
  }
  const links = [`<${runUrl(publicUrl, run.id)}|Open in the console>`, `run \`${run.id}\``];
  const source = alert?.generatorURL ? safeLink(alert.generatorURL, 'Source') : undefined;
  if (source) links.push(source);
  blocks.push(context(links.join(' · ')));
  // The fallback text is mrkdwn too (notifications, screen readers): escaped like the blocks.
  const text = `${dry}${run.playbook}: ${escapeText(summary)}${outcome ? ` (${outcome.status})` : ''}`;
  return { text: truncate(text, 3_000), blocks };
}

function expiresText(approval: ApprovalInfo): string {
  return approval.expiresAt ? utc(approval.expiresAt) : 'never';
}

/** An approval: the exact action, rendered parameters (already redacted), policy reasons, and the buttons while pending. */
export function renderApproval(run: RunInfo, approval: ApprovalInfo, state: ApprovalState, publicUrl: string): Rendered {
  const dry = run.dryRun ? '[DRY RUN] ' : '';
  const title = approval.round > 1 ? `⏫ ${dry}Escalated approval needed: ${approval.action}` : `🔐 ${dry}Approval needed: ${approval.action}`;
  const blocks: Block[] = [header(title)];
  if (run.dryRun) blocks.push(section(`${DRY_RUN_NOTE} Approving lets the dry run continue; nothing real happens.`));
  blocks.push(section(`Step \`${escapeText(approval.stepId)}\` of *${escapeText(run.playbook)}* wants to run \`${escapeText(approval.action)}\` (impact: *${escapeText(approval.impact)}*).`));
  blocks.push(
    fields([
      ['Approvers', approval.approvers.map(approverLabel).join(', ') || 'nobody'],
      ['Approvals needed', String(approval.minApprovals)],
      ['Expires', expiresText(approval)],
      ['On timeout', escapeText(approval.onTimeout)],
    ]),
  );
  if (approval.round > 1 && state.kind === 'pending') {
    blocks.push(section(`${approval.approvers.map(approverLabel).join(' ')}: the first approvers did not answer in time; your decision is needed.`));
  }
  blocks.push(section(`*Parameters* (secrets redacted)\n${codeBlock(approval.params ?? {}, 2_400)}`));
  const reasons = approval.reasons.length > 0 ? approval.reasons.map((r) => `• ${escapeText(r)}`).join('\n') : '• (none given)';
  blocks.push(section(`*Policy reasons*\n${reasons}`));
  const alertLine = run.alert?.summary ? `Alert: ${escapeText(run.alert.summary)}${run.alert.severity ? ` (${escapeText(run.alert.severity)})` : ''}` : '';
  blocks.push(context([alertLine, `<${runUrl(publicUrl, run.id)}|Open run in the console>`, `approval \`${approval.id}\``].filter(Boolean).join(' · ')));

  let status: string;
  switch (state.kind) {
    case 'pending':
      status = state.votes.length > 0 ? `🗳 ${state.votes.length} of ${approval.minApprovals} approvals: ${state.votes.map(actorLabel).join(', ')}` : '';
      break;
    case 'approved':
      status = `✅ *Approved* by ${actorLabel(state.by)} at ${utc(state.at)}`;
      break;
    case 'rejected':
      status = `❌ *Rejected* by ${actorLabel(state.by)} at ${utc(state.at)}`;
      break;
    case 'expired':
      status = `⏰ *Expired* at ${utc(state.at)} with nobody answering (on_timeout: ${escapeText(state.onTimeout)}${state.escalateTo?.length ? `, asking ${state.escalateTo.map(approverLabel).join(', ')}` : ''})`;
      break;
    case 'cancelled':
      status = `🚫 *Cancelled* at ${utc(state.at)}: ${escapeText(state.reason)}`;
      break;
  }
  if (status) blocks.push(section(status));
  if (state.kind === 'pending') {
    blocks.push({
      type: 'actions',
      block_id: 'firebreak_approval',
      elements: [
        { type: 'button', action_id: APPROVE_ACTION, style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value: approval.id },
        { type: 'button', action_id: REJECT_ACTION, style: 'danger', text: { type: 'plain_text', text: 'Reject' }, value: approval.id },
      ],
    });
  }
  const verb = state.kind === 'pending' ? 'Approval needed' : `Approval ${state.kind}`;
  return { text: truncate(`${dry}${verb}: ${approval.action} (step ${approval.stepId}) in run ${run.id}`, 3_000), blocks };
}

/** One thread line per event worth telling people about; null for the rest. */
export function renderThreadLine(event: TimelineEvent, dryRun: boolean): string | null {
  const step = 'stepId' in event.data && typeof event.data.stepId === 'string' ? `\`${escapeText(event.data.stepId)}\`` : '';
  const msg = (e: unknown) => escapeText(String((e as { message?: unknown } | null)?.message ?? e ?? 'unknown error'));
  const dry = dryRun ? '🧪 ' : '';
  switch (event.kind) {
    case 'run.queued':
      return `⏸ Queued: \`${escapeText(String(event.data.concurrencyKey))}\` already has ${String(event.data.active)} active run(s) (limit ${String(event.data.limit)}).`;
    case 'step.succeeded': {
      const took = typeof event.data.durationMs === 'number' ? ` in ${formatDuration(event.data.durationMs)}` : '';
      return `${dry}✅ ${step} (\`${escapeText(String(event.data.action))}\`) succeeded${took}${outputSnippet(event.data.output)}`;
    }
    case 'step.failed':
      return `${dry}❌ ${step} failed (attempt ${String(event.data.attempt)}): ${msg(event.data.error)}${event.data.onFailure === 'continue' ? ' (on_failure: continue)' : ''}`;
    case 'step.retrying':
      return `${dry}🔁 ${step} attempt ${String(event.data.attempt)} failed: ${msg(event.data.error)}; next attempt at ${utc(new Date(String(event.data.nextAttemptAt)))}`;
    case 'step.skipped':
      return `⏭ ${step} skipped: ${escapeText(String(event.data.reason ?? ''))}${event.data.when ? ` (\`${escapeText(String(event.data.when))}\`)` : ''}`;
    case 'step.denied':
      return `⛔ ${step} denied by policy: ${escapeText((event.data.reasons ?? []).join('; ') || 'no reason given')}`;
    case 'step.would_call':
      return `🧪 ${step} would call (dry run):\n${codeBlock(event.data.request, 1_500)}`;
    case 'compensation.succeeded':
      return `${dry}↩️ Compensated ${step} (\`${escapeText(String(event.data.action))}\`)`;
    case 'compensation.failed':
      return `${dry}⚠️ Compensation of ${step} failed: ${msg(event.data.error)}`;
    case 'approval.escalated':
      return `⏫ Approval for ${step} escalated to ${(event.data.approvers ?? []).map(approverLabel).join(', ')}`;
    case 'alert.resolved':
      return `🟢 Alert resolved${event.data.onResolved === 'abort' ? ': aborting the run (on_resolved: abort)' : ''}`;
    case 'run.abort_requested':
      return `🛑 Abort requested by ${actorLabel(event.actor)}: ${escapeText(String(event.data.reason ?? ''))}`;
    case 'run.succeeded':
    case 'run.failed':
    case 'run.aborted':
    case 'run.cancelled': {
      const status = event.kind.slice(4);
      const took = typeof event.data.durationMs === 'number' ? ` in ${formatDuration(event.data.durationMs)}` : '';
      const reason = status !== 'succeeded' && event.data.reason ? `: ${escapeText(String(event.data.reason))}` : '';
      return `${OUTCOME_ICON[status]} ${dry}*Run ${status}*${took}${reason}`;
    }
    case 'run.stuck':
      return `⚠️ *Run stuck*: no progress${step ? ` on ${step}` : ''} since ${utc(new Date(String(event.data.lastEventAt)))} (limit ${formatDuration(Number(event.data.thresholdMs))}). Repair: \`firebreak cancel\`, then \`firebreak retry\` (from the step that failed, or \`--from\` an earlier one).`;
    case 'run.retried':
      return `🔁 *Retried* by ${actorLabel(event.actor)} from \`${escapeText(String(event.data.fromStep))}\` (was ${escapeText(String(event.data.previousStatus))}; retry ${String(event.data.retry)}): ${escapeText(String(event.data.reason ?? ''))}`;
    case 'breaker.tripped':
      return `🧯 *Circuit breaker of ${escapeText(event.data.playbook)} tripped*: ${String(event.data.failures)} failed run${event.data.failures === 1 ? '' : 's'} in a row${event.data.key ? ` for \`${escapeText(event.data.key)}\`` : ''}. The playbook is *paused*: no run of it starts until a person resumes it (\`/firebreak resume ${escapeText(event.data.playbook)}\`).`;
    case 'run.held':
      return `⏸ *Held*: automation${event.data.playbook ? ` for ${escapeText(event.data.playbook)}` : ''} is paused by ${actorLabel(event.data.pausedBy)} (${escapeText(event.data.reason)}); ${step ? `${step} and the steps after it wait` : 'the run waits'} until someone resumes it.`;
    // Shown elsewhere (the run's first message, approval messages) or not worth a line.
    case 'run.created':
    case 'run.started':
    case 'run.abort_allowed':
    case 'run.abort_refused':
    case 'policy.decision':
    case 'approval.requested':
    case 'approval.vote':
    case 'approval.granted':
    case 'approval.rejected':
    case 'approval.refused':
    case 'approval.expired':
    case 'approval.cancelled':
    case 'step.started':
    case 'step.resumed':
    case 'step.polled':
    case 'compensation.started':
    case 'access.allowed':
    case 'access.denied':
    case 'token.created':
    case 'token.revoked':
    case 'session.started':
    case 'session.ended':
    case 'automation.paused':
    case 'automation.resumed':
    case 'silence.created':
    case 'silence.expired':
    case 'repair.retried':
    case 'repair.cancelled':
      return null;
    default:
      return unhandledKind(event, null);
  }
}

function outputSnippet(output: unknown): string {
  if (output === null || output === undefined) return '';
  if (typeof output === 'object' && !Array.isArray(output)) {
    const o = output as Record<string, unknown>;
    if (o.dryRun === true) return '';
    // A note's text is meant for people: show it as text.
    if (typeof o.text === 'string' && Object.keys(o).every((k) => k === 'text' || k === 'data')) return `\n> ${escapeText(truncate(o.text, 1_500)).replace(/\n/g, '\n> ')}`;
    if (Object.keys(o).length === 0) return '';
  }
  return `\n${codeBlock(output, 1_200)}`;
}

/** Help for `/firebreak`. */
export const COMMAND_HELP = [
  '*Firebreak* commands:',
  '• `/firebreak run <playbook> [key=value ...] [--dry-run]` start a run',
  '• `/firebreak status [run]` active runs, or one run (an id prefix is enough)',
  '• `/firebreak abort <run> [reason]` abort a run (checked by policy)',
  '• `/firebreak pause [playbook] <reason>` stop automation: no run starts, no further step starts (anyone signed in)',
  '• `/firebreak resume [playbook] [reason]` let automation go on (SRE)',
  '• `/firebreak silence <matcher>... for <duration> <reason>` silence matching alerts, e.g. `/firebreak silence service="checkout" for 2h db maintenance`',
  '• `/firebreak silence list`, `/firebreak silence expire <id> [reason]` active and pending silences; end one now',
].join('\n');
