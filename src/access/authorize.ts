/**
 * Authorization by policy: before every act, `firebreak/authorize` is asked
 * with `{ user, action, resource, mode, now }`, and its answer (allow or
 * deny, with reasons and the bundle hash) is written to the timeline: on the
 * run's chain when the act concerns a run (an allowed start goes on the new
 * run's chain), else on the access chain. Then the act is done as that
 * identity, which is also its recorded actor.
 *
 * The acts every channel shares (API, console, CLI, Slack) live here, so a
 * Slack `/firebreak abort` and a `POST /api/runs/:id/abort` are checked and
 * recorded the same way.
 */
import type { Logger } from 'pino';
import { approvalRunId, getRun, type AnswerResult, type Engine, type RetryResult, type StartRunInput } from '../engine/index.js';
import { AccessDeniedError, coerceError } from '../errors.js';
import type { AccessMode, Action, AuthorizeResult, Evaluated, PolicyGate } from '../policy/index.js';
import { withTransaction, type Pool } from '../store/index.js';
import type { NewEvent, Timeline } from '../timeline/index.js';
import { policyUser, type Identity } from './identity.js';
import { checkNewToken, createToken, getToken, listTokens, revokeToken, type NewToken, type TokenRecord } from './tokens.js';

export const AUTHORIZE_ENTRYPOINT = 'firebreak/authorize';

export const SERVICE_CANNOT_APPROVE = 'the service token (FIREBREAK_API_TOKEN) cannot answer approvals: a person must, with a personal token, the console or Slack';

export interface AccessDeps {
  pool: Pool;
  /**
   * Where decisions are written. Only the CLI's operator path may lack it
   * (it does not hold the server's audit key); it then says so.
   */
  timeline?: Timeline;
  policy: () => PolicyGate;
  mode: AccessMode;
  logger: Logger;
  now?: () => number;
}

export interface Verdict {
  allow: boolean;
  reasons: string[];
}

/** The timeline event for one authorization decision (allow and deny alike). */
function decisionEvent(who: Identity, action: Action, resource: Record<string, unknown>, verdict: Evaluated<AuthorizeResult>): NewEvent {
  return {
    kind: verdict.result.allow ? 'access.allowed' : 'access.denied',
    actor: who.id,
    data: {
      entrypoint: AUTHORIZE_ENTRYPOINT,
      action,
      resource,
      user: policyUser(who),
      allow: verdict.result.allow,
      reasons: verdict.result.reasons,
      bundleHash: verdict.bundleHash,
      inputHash: verdict.inputHash,
      ...(verdict.error && { error: verdict.error }),
    },
  };
}

export class Access {
  readonly mode: AccessMode;
  /** Events that could not be written for want of a timeline (see AccessDeps.timeline). */
  unrecorded = 0;
  private readonly now: () => number;

  constructor(private readonly deps: AccessDeps) {
    this.mode = deps.mode;
    this.now = deps.now ?? Date.now;
  }

  /**
   * Ask `firebreak/authorize`, without recording: the answer and the event
   * that records it. Fails closed: a policy that throws, is missing or
   * answers nonsense is a deny (the gate does that).
   */
  async decide(who: Identity, action: Action, resource: Record<string, unknown>): Promise<{ verdict: Verdict; event: NewEvent }> {
    let verdict: Evaluated<AuthorizeResult>;
    try {
      verdict = await this.deps.policy().authorize({ user: policyUser(who), action, resource, mode: this.mode, now: new Date(this.now()).toISOString() });
    } catch (err) {
      const message = coerceError(err).message;
      verdict = { result: { allow: false, reasons: [`policy error, denied: ${message}`] }, bundleHash: 'none', inputHash: 'none', error: message };
    }
    if (!verdict.result.allow) this.deps.logger.info({ actor: who.id, action, reasons: verdict.result.reasons }, 'access denied by policy');
    return { verdict: verdict.result, event: decisionEvent(who, action, resource, verdict) };
  }

  /**
   * Ask `firebreak/authorize` and record the answer (on the run's chain, or
   * the access chain). A decision that cannot be recorded is not acted on.
   */
  async authorize(who: Identity, action: Action, resource: Record<string, unknown>, options: { runId?: string } = {}): Promise<Verdict> {
    const { verdict, event } = await this.decide(who, action, resource);
    await this.append(options.runId, event);
    return verdict;
  }

  /** authorize, throwing AccessDeniedError (HTTP 403) on a deny. */
  async require(who: Identity, action: Action, resource: Record<string, unknown>, options: { runId?: string } = {}): Promise<void> {
    const verdict = await this.authorize(who, action, resource, options);
    if (!verdict.allow) throw new AccessDeniedError(action, who.id, verdict.reasons);
  }

  /** A refusal by a fixed rule of the product (not the policy), recorded like a policy deny. */
  private async deny(who: Identity, action: Action, resource: Record<string, unknown>, reason: string, options: { runId?: string } = {}): Promise<void> {
    const event: NewEvent = {
      kind: 'access.denied',
      actor: who.id,
      data: { entrypoint: 'fixed rule', action, resource, user: policyUser(who), allow: false, reasons: [reason] },
    };
    await this.append(options.runId, event);
  }

  /** Write events to a run's chain, or to the access chain when they concern no run. */
  private async append(runId: string | undefined, ...events: NewEvent[]): Promise<void> {
    const timeline = this.deps.timeline;
    if (!timeline) {
      this.unrecorded += events.length;
      return;
    }
    await withTransaction(this.deps.pool, async (client) => {
      if (runId) {
        await timeline.lockRun(client, runId);
        await timeline.appendToRun(client, runId, ...events);
      } else {
        await timeline.appendAccess(client, ...events);
      }
    });
  }

  /** Record an event on the access chain (token and session life cycle). */
  async record(...events: NewEvent[]): Promise<void> {
    await this.append(undefined, ...events);
  }

  // ---- acts every channel shares ------------------------------------------------------------

  /**
   * Authorize `run.start` and start: `start` creates the run(s) with the
   * given events after their first ones, so an allowed decision lives on the
   * chain of the run it let start, written in the same transaction. A deny,
   * or a start that created no run (a replay nothing matched), is recorded on
   * the access chain; a retried request that found its run, on that run's.
   */
  async authorizeStart<T extends { runs: Array<{ runId: string; created: boolean }> }>(
    who: Identity,
    resource: Record<string, unknown>,
    start: (events: NewEvent[]) => Promise<T>,
  ): Promise<T> {
    const { verdict, event } = await this.decide(who, 'run.start', resource);
    if (!verdict.allow) {
      await this.append(undefined, event);
      throw new AccessDeniedError('run.start', who.id, verdict.reasons);
    }
    const started = await start([event]);
    if (started.runs.length === 0) await this.append(undefined, event);
    for (const run of started.runs) if (!run.created) await this.append(run.runId, event);
    return started;
  }

  /** Start a run as `who` (API, CLI, console, Slack `/firebreak run`). The actor is who.id. */
  async startRun(engine: Engine, who: Identity, input: Omit<StartRunInput, 'startedBy' | 'events'>): Promise<{ runId: string; created: boolean }> {
    const resource = { playbook: input.playbook, dry_run: input.dryRun ?? false, trigger: input.trigger ?? 'manual' };
    const { runs } = await this.authorizeStart(who, resource, async (events) => ({ runs: [await engine.startRun({ ...input, startedBy: who.id, events })] }));
    return runs[0]!;
  }

  /** Abort a run as `who`; the decision is written to the run's own chain. */
  async abortRun(engine: Engine, who: Identity, runId: string, reason?: string): Promise<{ status: 'aborted' | 'abort_requested' }> {
    const run = await getRun(this.deps.pool, runId);
    await this.require(who, 'run.abort', { run_id: run.id, playbook: run.playbook, started_by: run.startedBy, status: run.status, dry_run: run.dryRun }, { runId: run.id });
    return engine.abortRun(run.id, who.id, reason);
  }

  /**
   * Retry a finished run as `who` (`run.retry`): it continues from `from`
   * (default: the step that failed). The decision is written to the run's
   * chain; the retry to the run's chain and the automation chain.
   */
  async retryRun(engine: Engine, who: Identity, runId: string, input: { from?: string; reason?: string } = {}): Promise<RetryResult> {
    const run = await getRun(this.deps.pool, runId);
    await this.require(who, 'run.retry', { run_id: run.id, playbook: run.playbook, started_by: run.startedBy, status: run.status, dry_run: run.dryRun, from: input.from ?? null }, { runId: run.id });
    return engine.retryRun(run.id, who.id, input);
  }

  /** Cancel an active run as `who` (`run.cancel`): it ends now, without compensation. */
  async cancelRun(engine: Engine, who: Identity, runId: string, reason?: string): Promise<{ previousStatus: string }> {
    const run = await getRun(this.deps.pool, runId);
    await this.require(who, 'run.cancel', { run_id: run.id, playbook: run.playbook, started_by: run.startedBy, status: run.status, dry_run: run.dryRun }, { runId: run.id });
    return engine.cancelRun(run.id, who.id, reason);
  }

  /**
   * Answer an approval as `who`: `firebreak/authorize` (may this identity
   * answer approvals at all?), then `firebreak/approve` (may it answer this
   * one?). The service token never answers, whatever a policy says.
   */
  async answerApproval(engine: Engine, who: Identity, input: { approvalId: string; decision: 'approve' | 'reject'; comment?: string }): Promise<AnswerResult> {
    const runId = await approvalRunId(this.deps.pool, input.approvalId);
    const resource = { approval_id: input.approvalId, run_id: runId, decision: input.decision };
    if (who.method === 'service') {
      await this.deny(who, 'approval.answer', resource, SERVICE_CANNOT_APPROVE, { runId });
      throw new AccessDeniedError('answer approvals', who.id, [SERVICE_CANNOT_APPROVE]);
    }
    const verdict = await this.authorize(who, 'approval.answer', resource, { runId });
    if (!verdict.allow) throw new AccessDeniedError('answer approvals', who.id, verdict.reasons);
    return engine.answerApproval({ approvalId: input.approvalId, decision: input.decision, user: policyUser(who), mode: this.mode, ...(input.comment && { comment: input.comment }) });
  }

  // ---- personal tokens ---------------------------------------------------------------------

  /** `firebreak token create` / `POST /api/tokens`: the token is returned once, never stored in clear. */
  async createToken(who: Identity, input: Omit<NewToken, 'createdBy'>): Promise<{ token: string; record: TokenRecord }> {
    checkNewToken({ ...input, createdBy: who.id });
    await this.require(who, 'token.create', { user: input.user, groups: [...(input.groups ?? [])].sort(), ttl_seconds: input.ttlSeconds ?? null });
    const created = await createToken(this.deps.pool, { ...input, createdBy: who.id });
    const r = created.record;
    await this.record({ kind: 'token.created', actor: who.id, data: { tokenId: r.id, user: r.user, groups: r.groups, expiresAt: r.expiresAt, ...(r.description && { description: r.description }) } });
    return created;
  }

  async listTokens(who: Identity, options: { includeInactive?: boolean; user?: string } = {}): Promise<TokenRecord[]> {
    await this.require(who, 'token.list', { ...(options.user && { user: options.user }), include_inactive: options.includeInactive ?? false });
    return listTokens(this.deps.pool, options);
  }

  /** Revoke a token; every console session opened with it ends at once. */
  async revokeToken(who: Identity, tokenId: string): Promise<{ record: TokenRecord; sessionsEnded: number }> {
    const existing = await getToken(this.deps.pool, tokenId);
    await this.require(who, 'token.revoke', { token_id: existing.id, user: existing.user });
    const revoked = await revokeToken(this.deps.pool, existing.id, who.id);
    await this.record({ kind: 'token.revoked', actor: who.id, data: { tokenId: existing.id, user: existing.user, sessionsEnded: revoked.sessionsEnded, alreadyRevoked: existing.state === 'revoked' } });
    return revoked;
  }
}
