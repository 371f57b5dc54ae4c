/**
 * Turns a run's timeline into Slack messages: the run's first message, its
 * thread lines, approval messages and their updates. The timeline is the
 * source of truth; slack_threads.last_seq says how far it has been turned
 * into outbox rows, and both move in one transaction, so every event is
 * projected exactly once whichever replica does it, even after a crash.
 */
import type { Logger } from 'pino';
import { coerceError } from '../errors.js';
import { withTransaction, type Pool, type PoolClient } from '../store/index.js';
import { applyEvent, createStory, isRunEnd, rowToEvent, unhandledKind, type EventRow, type RunStory, type StoryRun, type TimelineEvent } from '../timeline/index.js';
import { enqueue, type OutboxItem } from './outbox.js';
import * as Q from './queries.js';
import { renderApproval, renderRunMessage, renderThreadLine, type AlertInfo, type ApprovalInfo, type ApprovalState, type RunInfo, type RunOutcome } from './render.js';

const BATCH = 200;

export interface ProjectorOptions {
  pool: Pool;
  logger: Logger;
  publicUrl: string;
  /** SLACK_CHANNEL, for runs whose row names no channel. */
  defaultChannel?: string;
  /** Told after new outbox rows commit (wakes this process's sender). */
  onEnqueued?: () => void;
}

interface RunRow extends StoryRun {
  params: Record<string, unknown> | null;
  channel: string | null;
  /** A dry run asked not to be posted (dry_run_options.quiet). */
  quiet: boolean;
}

interface ApprovalRow {
  id: string;
  step_id: string;
  round: number;
  approvers: string[];
  min_approvals: number;
  reasons: string[];
  request: { action?: string; impact?: string; params?: unknown };
  on_timeout: string;
  expires_at: Date | null;
}

export const runRef = (runId: string) => `run:${runId}`;
export const approvalRef = (approvalId: string) => `approval:${approvalId}`;

export function runInfo(row: RunRow): RunInfo {
  const a = row.alert;
  const alert: AlertInfo | null = a
    ? {
        source: str(a.source),
        summary: str(a.summary),
        severity: str(a.severity),
        status: str(a.status),
        startsAt: str(a.startsAt),
        labels: (a.labels as Record<string, string> | undefined) ?? {},
        generatorURL: str(a.generatorURL) || undefined,
      }
    : null;
  return { id: row.id, playbook: row.playbook, trigger: row.trigger, startedBy: row.started_by, dryRun: row.dry_run, alert, params: row.params ?? {}, createdAt: row.created_at };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export class Projector {
  private readonly queued = new Set<string>();
  private draining: Promise<void> | undefined;
  private readonly log: Logger;

  constructor(private readonly options: ProjectorOptions) {
    this.log = options.logger.child({ component: 'slack-projector' });
  }

  /** Project a run soon (called from the engine's event listener; never throws). */
  schedule(runId: string): void {
    this.queued.add(runId);
    if (!this.draining) this.draining = this.drain().finally(() => (this.draining = undefined));
  }

  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private async drain(): Promise<void> {
    // Let the rest of this tick's events arrive: one projection covers them all.
    await new Promise((r) => setImmediate(r));
    while (this.queued.size > 0) {
      const batch = [...this.queued];
      this.queued.clear();
      await Promise.all(
        batch.map((runId) =>
          this.project(runId).catch((err) => {
            // The catch-up scan tries again; nothing is lost.
            this.log.warn({ runId, err: coerceError(err).message }, 'Slack projection failed; will retry');
          }),
        ),
      );
    }
  }

  /** Catch-up: project every run whose timeline is ahead of its projection. */
  async catchUp(): Promise<number> {
    const { rows } = await this.options.pool.query<{ id: string }>(Q.RUNS_TO_PROJECT);
    for (const r of rows) this.schedule(r.id);
    await this.idle();
    return rows.length;
  }

  /** Turn the run's unprojected events into outbox rows. Returns how many rows were written. */
  async project(runId: string): Promise<number> {
    let total = 0;
    for (;;) {
      const { written, more } = await withTransaction(this.options.pool, (client) => this.projectBatch(client, runId));
      total += written;
      if (!more) break;
    }
    if (total > 0) this.options.onEnqueued?.();
    return total;
  }

  /**
   * The run's story (the shared reducer over its chain) is folded up to the
   * cursor, then each new event is folded and turned into messages: an
   * approval message shows the approval as of that event (its votes, who
   * decided), whichever replica projects it and however late.
   */
  private async projectBatch(client: PoolClient, runId: string): Promise<{ written: number; more: boolean }> {
    await client.query(Q.ENSURE_THREAD, [runId]);
    const thread = (await client.query<{ last_seq: number; channel: string | null; done: boolean }>(Q.LOCK_THREAD, [runId])).rows[0];
    if (!thread) return { written: 0, more: false };
    const chain = (await client.query<EventRow>(Q.EVENTS_UP_TO, [runId, thread.last_seq + BATCH])).rows.map(rowToEvent);
    const events = chain.filter((e) => e.seq > thread.last_seq);
    if (events.length === 0) return { written: 0, more: false };
    const run = (await client.query<RunRow>(Q.RUN_FOR_SLACK, [runId])).rows[0];
    const last = events[events.length - 1]!;
    const done = events.some(isRunEnd);
    // A quiet dry run (a batch replay, a playbook test) is not posted.
    const channel = run && !run.quiet ? (run.channel ?? this.options.defaultChannel ?? null) : null;
    if (!run || !channel) {
      // Nowhere to post: remember that we looked, post nothing.
      await client.query(Q.ADVANCE_THREAD, [runId, last.seq, null, done]);
      return { written: 0, more: events.length === BATCH };
    }
    const story = createStory(run);
    for (const e of chain) if (e.seq <= thread.last_seq) applyEvent(story, e);
    const info = runInfo(run);
    const items: OutboxItem[] = [];
    for (const event of events) {
      applyEvent(story, event);
      items.push(...(await this.itemsFor(client, info, channel, event, story)));
    }
    await enqueue(client, ...items);
    await client.query(Q.ADVANCE_THREAD, [runId, last.seq, channel, done]);
    return { written: items.length, more: events.length === BATCH };
  }

  private async itemsFor(client: PoolClient, run: RunInfo, channel: string, event: TimelineEvent, story: RunStory): Promise<OutboxItem[]> {
    const base = { threadKey: run.id, runId: run.id };
    const reply = (text: string): OutboxItem => ({ ...base, kind: 'reply', method: 'chat.postMessage', payload: { channel, text, threadRef: runRef(run.id) } });
    const line = (): OutboxItem[] => {
      const text = renderThreadLine(event, run.dryRun);
      return text ? [reply(text)] : [];
    };
    const time = new Date(event.time);
    switch (event.kind) {
      case 'run.created': {
        const message = renderRunMessage(run, this.options.publicUrl);
        return [{ ...base, kind: 'run', method: 'chat.postMessage', ref: runRef(run.id), payload: { channel, ...message } }];
      }
      case 'approval.requested': {
        const approval = await this.approval(client, story, event.data.approvalId);
        const message = renderApproval(run, approval, { kind: 'pending', votes: [] }, this.options.publicUrl);
        // A thread reply broadcast to the channel: in the run's story, and in front of the approvers.
        return [{ ...base, kind: 'approval', method: 'chat.postMessage', ref: approvalRef(approval.id), payload: { channel, ...message, threadRef: runRef(run.id), broadcast: true } }];
      }
      case 'approval.vote':
      case 'approval.granted':
      case 'approval.rejected':
      case 'approval.expired':
      case 'approval.cancelled': {
        const approval = await this.approval(client, story, event.data.approvalId);
        const summary = story.approvals.get(event.data.approvalId);
        let state: ApprovalState;
        if (event.kind === 'approval.vote') state = { kind: 'pending', votes: (summary?.votes ?? []).filter((v) => v.decision === 'approve').map((v) => v.actor) };
        else if (event.kind === 'approval.granted') state = { kind: 'approved', by: event.actor, at: time };
        else if (event.kind === 'approval.rejected') state = { kind: 'rejected', by: event.actor, at: time };
        else if (event.kind === 'approval.expired') state = { kind: 'expired', at: time, onTimeout: String(event.data.onTimeout ?? approval.onTimeout) };
        else state = { kind: 'cancelled', at: time, by: event.actor, reason: String(event.data.reason ?? 'cancelled') };
        const message = renderApproval(run, approval, state, this.options.publicUrl);
        return [{ ...base, kind: 'approval-update', method: 'chat.update', payload: { targetRef: approvalRef(approval.id), ...message } }];
      }
      case 'step.succeeded': {
        const output = event.data.output as { channel?: unknown; text?: unknown; blocks?: unknown; posted?: unknown } | null;
        if (event.data.action === 'slack.message' && output && typeof output.text === 'string' && output.posted === false) {
          // The slack.message action only records its message; it is posted from here, through the outbox.
          const target = typeof output.channel === 'string' && output.channel ? output.channel : undefined;
          const payload = { channel: target ?? channel, text: output.text, ...(Array.isArray(output.blocks) && { blocks: output.blocks as never }), ...(!target && { threadRef: runRef(run.id) }) };
          return [{ ...base, kind: 'step-message', method: 'chat.postMessage', payload }];
        }
        return line();
      }
      case 'run.succeeded':
      case 'run.failed':
      case 'run.aborted':
      case 'run.cancelled': {
        const status = event.kind.slice(4) as NonNullable<RunOutcome>['status'];
        const outcome: RunOutcome = {
          status,
          at: time,
          ...(typeof event.data.reason === 'string' && event.kind !== 'run.succeeded' && { reason: event.data.reason }),
          ...(typeof event.data.durationMs === 'number' && { durationMs: event.data.durationMs }),
        };
        const root = renderRunMessage(run, this.options.publicUrl, outcome);
        return [...line(), { ...base, kind: 'run-update', method: 'chat.update', payload: { targetRef: runRef(run.id), ...root } }];
      }
      case 'run.queued':
      case 'run.started':
      case 'run.abort_requested':
      case 'run.abort_allowed':
      case 'run.abort_refused':
      case 'alert.resolved':
      case 'policy.decision':
      case 'approval.escalated':
      case 'approval.refused':
      case 'step.started':
      case 'step.resumed':
      case 'step.polled':
      case 'step.would_call':
      case 'step.retrying':
      case 'step.failed':
      case 'step.skipped':
      case 'step.denied':
      case 'compensation.started':
      case 'compensation.succeeded':
      case 'compensation.failed':
      case 'access.allowed':
      case 'access.denied':
      case 'token.created':
      case 'token.revoked':
      case 'session.started':
      case 'session.ended':
      case 'run.retried': {
        // The run goes on: its first message no longer shows how it ended.
        const root = renderRunMessage(run, this.options.publicUrl);
        return [...line(), { ...base, kind: 'run-update', method: 'chat.update', payload: { targetRef: runRef(run.id), ...root } }];
      }
      case 'breaker.tripped':
      case 'run.held':
      case 'run.stuck':
        return line();
      case 'automation.paused':
      case 'automation.resumed':
      case 'silence.created':
      case 'silence.expired':
      case 'repair.retried':
      case 'repair.cancelled':
        return [];
      default:
        return unhandledKind(event, []);
    }
  }

  /** The approval as requested, from the story (what the timeline recorded); its row only for what older events lack. */
  private async approval(client: PoolClient, story: RunStory, approvalId: string): Promise<ApprovalInfo> {
    const a = story.approvals.get(approvalId);
    const impact = a ? (story.steps.get(a.stepId)?.impact ?? 'low') : 'low';
    if (a && a.action) {
      return {
        id: a.id,
        stepId: a.stepId,
        round: a.round,
        action: a.action,
        impact,
        params: a.params,
        reasons: a.reasons,
        approvers: a.approvers,
        minApprovals: a.minApprovals,
        onTimeout: a.onTimeout,
        expiresAt: a.expiresAt ? new Date(a.expiresAt) : null,
      };
    }
    const row = (await client.query<ApprovalRow>(Q.APPROVAL_FOR_SLACK, [approvalId])).rows[0];
    if (!row) throw new Error(`approval ${approvalId} not found`);
    return {
      id: row.id,
      stepId: row.step_id,
      round: row.round,
      action: row.request.action ?? '?',
      impact: row.request.impact ?? 'low',
      params: row.request.params,
      reasons: row.reasons ?? [],
      approvers: row.approvers ?? [],
      minApprovals: row.min_approvals,
      onTimeout: row.on_timeout,
      expiresAt: row.expires_at,
    };
  }
}
