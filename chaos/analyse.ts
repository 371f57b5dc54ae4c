/**
 * Turns what the chaos run saw (sender answers, target calls, process
 * history) and what the database holds into checks. Must-hold checks decide
 * the exit code; the others are measurements.
 */
import type { Pool } from 'pg';
import { auditPassed, verifyAudit, type AuditKey } from '../src/audit/index.js';
import { expectedPlaybooks, type ChaosAlert, type Notification } from './scenario.js';
import type { TargetCall } from './target.js';

export interface Check {
  name: string;
  value: string;
  expected?: string;
  /** undefined: a measurement, not judged. */
  ok?: boolean;
  note?: string;
}

export interface SenderStats {
  posts: number;
  answered202: number;
  answered503: number;
  answered503DuringOutage: number;
  answered202DuringOutage: number;
  connectionErrors: number;
  otherAnswers: Record<string, number>;
  /** `${source}/${fingerprint}` of every alert in a notification answered 202. */
  accepted: Set<string>;
  /** First time each alert was posted (ms). */
  firstSentAt: Map<string, number>;
  gaveUp: number[];
  repeatsAccepted: number;
}

export interface ProcessHistory {
  kills: number;
  /** SIGSTOP for `ms` (longer than the lease), then SIGCONT; how long until it served /readyz again. */
  pauses: Array<{ pid: number; ms: number; servedAgainAfterMs?: number }>;
  starts: number;
  incarnations: Array<{ slot: number; generation: number; pid: number; startedAt: number; readyAt?: number; killedAt?: number; takeovers: number }>;
}

export interface OutageHistory {
  /** crash: immediate shutdown (no checkpoint, crash recovery on restart); clean: a fast stop. */
  mode: 'crash' | 'clean';
  /** Postgres stop began / it accepted connections again (ms). */
  downAt: number;
  upAt: number;
  /** pids alive (and ready) through the outage, with when each answered /readyz 200 again. */
  survivors: Array<{ pid: number; readyAgainAt?: number }>;
}

export interface Violation {
  kind: string;
  runId: string;
  stepId?: string;
  detail: string;
}

export interface Totals {
  alertsSent: number;
  alertsAccepted: number;
  episodesStored: number;
  alertsLost: number;
  runsExpected: number;
  runsCreated: number;
  runsFinished: number;
  runsSucceeded: number;
  doubleExecutions: number;
  callsWithBadKeys: number;
  reDrivenKeys: number;
  resumedEvents: number;
  takeovers: number;
  kills: number;
  brokenChains: number;
}

export interface Analysis {
  checks: Check[];
  totals: Totals;
  violations: Violation[];
  /** Run ids that did not finish or did not succeed. */
  unfinished: string[];
  failedRuns: string[];
  latency: { p50: number; p99: number; max: number; n: number };
  mustHoldFailed: string[];
}

const TERMINAL = new Set(['succeeded', 'failed', 'aborted', 'cancelled']);
const HTTP_STEPS: Record<string, string[]> = {
  'chaos-rollback': ['context', 'mitigate', 'verify'],
  'chaos-restart': ['restart', 'check'],
  'chaos-disk': ['cleanup', 'notify'],
  'chaos-queue': ['drain', 'report'],
  'chaos-page': ['page'],
  'chaos-approve': ['change', 'check'],
  'chaos-undo': ['deploy', 'smoke'],
  'chaos-resolve': ['drain', 'finish'],
};
/** Playbooks whose runs do not all succeed: how each may end (checked per run below). */
const MAY_NOT_SUCCEED = new Set(['chaos-approve', 'chaos-undo', 'chaos-resolve']);

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function pidOfWorker(worker: string | null): number | undefined {
  if (!worker) return undefined;
  const parts = worker.split(':');
  const pid = Number(parts[parts.length - 2]);
  return Number.isInteger(pid) ? pid : undefined;
}

export async function analyse(input: {
  pool: Pool;
  auditKey: AuditKey;
  notifications: Notification[];
  sender: SenderStats;
  calls: TargetCall[];
  processes: ProcessHistory;
  outage?: OutageHistory;
  outageSkippedReason?: string;
}): Promise<Analysis> {
  const { pool, notifications, sender, calls } = input;
  const checks: Check[] = [];
  const violations: Violation[] = [];
  const must = (name: string, ok: boolean, value: string, expected: string, note?: string) => checks.push({ name, value, expected, ok, ...(note && { note }) });
  const measure = (name: string, value: string, note?: string) => checks.push({ name, value, ...(note && { note }) });

  // ---------- alerts ----------
  const allAlerts = new Map<string, ChaosAlert>();
  for (const n of notifications) for (const a of n.alerts) allAlerts.set(`${a.source}/${a.fingerprint}`, a);
  const episodes = (await pool.query<{ id: number; source: string; fingerprint: string; deliveries: number; born_resolved: boolean }>(
    `select id, source, fingerprint, deliveries, resolved_at is not null and resolved_at = first_seen_at as born_resolved from alert_episodes`,
  )).rows;
  const stored = new Map(episodes.map((e) => [`${e.source}/${e.fingerprint}`, e]));
  const lost = [...sender.accepted].filter((k) => !stored.has(k));
  const originals = notifications.filter((n) => n.repeatOf === undefined).length;
  measure('webhook notifications posted (incl. retries)', `${sender.posts} posts of ${notifications.length} notifications (${originals} + ${notifications.length - originals} re-sends)`);
  measure('webhook answers', `202: ${sender.answered202}, 503: ${sender.answered503}, connection errors: ${sender.connectionErrors}${Object.keys(sender.otherAnswers).length ? `, other: ${JSON.stringify(sender.otherAnswers)}` : ''}`);
  must('no webhook answer other than 202 / 503 (never 4xx or 500)', Object.keys(sender.otherAnswers).length === 0, Object.keys(sender.otherAnswers).length === 0 ? 'none' : JSON.stringify(sender.otherAnswers), 'none');
  must('alerts accepted (202) vs sent', sender.accepted.size === allAlerts.size && sender.gaveUp.length === 0, `${sender.accepted.size} / ${allAlerts.size}`, 'all', sender.gaveUp.length ? `sender gave up on notifications ${sender.gaveUp.slice(0, 10).join(', ')}` : undefined);
  must('alerts accepted vs episodes stored', sender.accepted.size === episodes.length && lost.length === 0, `${sender.accepted.size} accepted, ${episodes.length} stored`, 'equal', lost.length ? `lost: ${lost.slice(0, 10).join(', ')}` : undefined);
  must('accepted alerts lost', lost.length === 0, String(lost.length), '0');
  const redelivered = episodes.filter((e) => e.deliveries > 1).length;
  measure('episodes delivered more than once (re-sends, retries after a lost answer)', String(redelivered));

  // ---------- runs ----------
  const runs = (await pool.query<{ id: string; playbook: string; status: string; created_at: Date; source: string; fingerprint: string }>(
    `select r.id, r.playbook, r.status, r.created_at, e.source, e.fingerprint from runs r join alert_episodes e on e.id = r.episode_id`,
  )).rows;
  const allRuns = Number((await pool.query<{ n: number }>('select count(*)::int as n from runs')).rows[0]!.n);
  let expectedRuns = 0;
  const expectedPairs = new Set<string>();
  for (const [key, alert] of allAlerts) {
    // An episode whose resolve was stored before its firing (the firing was retried through an outage) starts nothing.
    if (!stored.has(key) || stored.get(key)!.born_resolved) continue;
    for (const p of expectedPlaybooks(alert)) {
      expectedRuns++;
      expectedPairs.add(`${key}|${p}`);
    }
  }
  const unexpected = runs.filter((r) => !expectedPairs.has(`${r.source}/${r.fingerprint}|${r.playbook}`));
  must('runs created vs expected (one per episode and matching playbook)', allRuns === expectedRuns && unexpected.length === 0, `${allRuns} / ${expectedRuns}`, 'equal', unexpected.length ? `unexpected: ${unexpected.slice(0, 5).map((r) => r.id).join(', ')}` : undefined);
  const byStatus: Record<string, number> = {};
  for (const r of runs) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  const unfinished = runs.filter((r) => !TERMINAL.has(r.status)).map((r) => r.id);
  const failedRuns = runs.filter((r) => !MAY_NOT_SUCCEED.has(r.playbook) && TERMINAL.has(r.status) && r.status !== 'succeeded').map((r) => r.id);
  must('runs finished vs created', unfinished.length === 0 && runs.length === allRuns, `${runs.length - unfinished.length} / ${allRuns}`, 'all', `by status ${JSON.stringify(byStatus)}`);
  const mustSucceed = runs.filter((r) => !MAY_NOT_SUCCEED.has(r.playbook));
  const unexpectedFailures = mustSucceed.filter((r) => TERMINAL.has(r.status) && r.status !== 'succeeded').map((r) => r.id);
  must(
    'runs of playbooks whose retry budgets cover every injected failure succeeded',
    unexpectedFailures.length === 0,
    `${mustSucceed.filter((r) => r.status === 'succeeded').length} / ${mustSucceed.length}`,
    'all',
    unexpectedFailures.length ? `not succeeded: ${unexpectedFailures.slice(0, 10).join(', ')}` : `all runs: ${JSON.stringify(byStatus)}`,
  );

  // ---------- steps: the double-execution audit ----------
  const attempts = (await pool.query<{ run_id: string; step_id: string; attempt: number; status: string; idempotency_key: string; worker: string | null; started_at: Date }>(
    'select run_id, step_id, attempt, status, idempotency_key, worker, started_at from step_attempts',
  )).rows;
  const events = (await pool.query<{ run_id: string; time: Date; kind: string; step_id: string | null; attempt: number | null; worker: string | null }>(
    `select run_id, time, kind, data->>'stepId' as step_id, (data->>'attempt')::int as attempt, data->>'worker' as worker
     from timeline_events where run_id is not null and kind in ('step.started', 'step.resumed', 'step.succeeded', 'step.retrying', 'step.failed', 'run.started',
                                                                 'compensation.started', 'compensation.succeeded', 'compensation.failed', 'alert.resolved')
     order by run_id, seq`,
  )).rows;
  const runById = new Map(runs.map((r) => [r.id, r]));
  const attemptByKey = new Map(attempts.map((a) => [a.idempotency_key, a]));
  const succeededAt = new Map<string, { times: number[]; attempt: number }>();
  const compensatedAt = new Map<string, number[]>();
  const compensationStarted = new Set<string>();
  const resolvedRuns = new Set<string>();
  const firstStepAt = new Map<string, number>();
  let resumed = 0;
  let retrying = 0;
  for (const e of events) {
    if (e.kind === 'step.succeeded') {
      const k = `${e.run_id}:${e.step_id}`;
      const s = succeededAt.get(k) ?? { times: [], attempt: e.attempt ?? 0 };
      s.times.push(e.time.getTime());
      succeededAt.set(k, s);
    } else if (e.kind === 'step.started') {
      if (!firstStepAt.has(e.run_id)) firstStepAt.set(e.run_id, e.time.getTime());
    } else if (e.kind === 'step.resumed') resumed++;
    else if (e.kind === 'step.retrying') retrying++;
    else if (e.kind === 'compensation.started') compensationStarted.add(`${e.run_id}:${e.step_id}`);
    else if (e.kind === 'compensation.succeeded') compensatedAt.set(`${e.run_id}:${e.step_id}`, [...(compensatedAt.get(`${e.run_id}:${e.step_id}`) ?? []), e.time.getTime()]);
    else if (e.kind === 'alert.resolved') resolvedRuns.add(e.run_id);
  }
  for (const [k, times] of compensatedAt) {
    if (times.length > 1) {
      const [runId, stepId] = k.split(':');
      violations.push({ kind: 'compensation.succeeded recorded twice', runId: runId!, stepId: stepId!, detail: `${times.length} compensation.succeeded events` });
    }
  }
  for (const [k, s] of succeededAt) {
    if (s.times.length > 1) {
      const [runId, stepId] = k.split(':');
      violations.push({ kind: 'step.succeeded recorded twice', runId: runId!, stepId: stepId!, detail: `${s.times.length} step.succeeded events at ${s.times.map((t) => new Date(t).toISOString()).join(', ')}` });
    }
  }
  const succeededAttempts = new Map<string, number>();
  for (const a of attempts) if (a.status === 'succeeded') succeededAttempts.set(`${a.run_id}:${a.step_id}`, (succeededAttempts.get(`${a.run_id}:${a.step_id}`) ?? 0) + 1);
  for (const [k, n] of succeededAttempts) {
    if (n > 1) {
      const [runId, stepId] = k.split(':');
      violations.push({ kind: 'two succeeded attempts', runId: runId!, stepId: stepId!, detail: `${n} step_attempts rows succeeded` });
    }
  }

  let afterSuccess = 0;
  let badKeys = 0;
  let noAttemptRow = 0;
  const keyCounts = new Map<string, number>();
  const calledKeys = new Set<string>();
  for (const c of calls) {
    if (!c.key) {
      badKeys++;
      violations.push({ kind: 'call without Idempotency-Key', runId: '-', detail: `${c.method} ${c.path} at ${new Date(c.at).toISOString()}` });
      continue;
    }
    keyCounts.set(c.key, (keyCounts.get(c.key) ?? 0) + 1);
    calledKeys.add(c.key);
    const m = /^([0-9a-f-]{36}):([a-z0-9_-]+):(\d+|compensate)$/i.exec(c.key);
    const run = m ? runById.get(m[1]!) : undefined;
    if (!m || !run || run.playbook !== c.playbook || (m[3] !== 'compensate' && m[2] !== c.step)) {
      badKeys++;
      violations.push({ kind: 'Idempotency-Key does not name this run and step', runId: m?.[1] ?? '-', detail: `key ${c.key} on ${c.path}` });
      continue;
    }
    const [, runId, stepId, attemptText] = m;
    if (attemptText === 'compensate') {
      // A compensation call: its compensation.started is recorded before the call; none may follow its recorded success.
      if (!compensationStarted.has(`${runId}:${stepId}`)) {
        noAttemptRow++;
        violations.push({ kind: 'compensation call with no compensation.started', runId: runId!, stepId: stepId!, detail: `key ${c.key} called at ${new Date(c.at).toISOString()}` });
      }
      const done = compensatedAt.get(`${runId}:${stepId}`)?.[0];
      if (done !== undefined && c.at > done) {
        afterSuccess++;
        violations.push({ kind: 'compensation executed again after its recorded success', runId: runId!, stepId: stepId!, detail: `key ${c.key} reached the target at ${new Date(c.at).toISOString()}; compensation.succeeded at ${new Date(done).toISOString()}` });
      }
      continue;
    }
    const attempt = Number(attemptText);
    if (!attemptByKey.has(c.key)) {
      noAttemptRow++;
      violations.push({ kind: 'call with no recorded attempt', runId: runId!, stepId: stepId!, detail: `key ${c.key} called at ${new Date(c.at).toISOString()} but step_attempts has no such row` });
    }
    const success = succeededAt.get(`${runId}:${stepId}`);
    if (success && (c.at > success.times[0]! || attempt > success.attempt)) {
      afterSuccess++;
      violations.push({
        kind: 'step executed again after its recorded success',
        runId: runId!,
        stepId: stepId!,
        detail: `key ${c.key} (call #${c.nth} of this key) reached the target at ${new Date(c.at).toISOString()}; step.succeeded (attempt ${success.attempt}) was recorded at ${new Date(success.times[0]!).toISOString()}`,
      });
    }
  }
  // A recorded success for an HTTP step must have reached the target with that attempt's key.
  let succeededWithoutCall = 0;
  for (const [k, s] of succeededAt) {
    const [runId, stepId] = k.split(':');
    const run = runById.get(runId!);
    if (!run || !HTTP_STEPS[run.playbook]?.includes(stepId!)) continue;
    if (!calledKeys.has(`${runId}:${stepId}:${s.attempt}`)) {
      succeededWithoutCall++;
      violations.push({ kind: 'success recorded without a call', runId: runId!, stepId: stepId!, detail: `attempt ${s.attempt} never reached the target` });
    }
  }
  const repeatedKeys = [...keyCounts.values()].filter((n) => n > 1);
  const repeatedCalls = repeatedKeys.reduce((a, n) => a + n - 1, 0);
  const DOUBLE = new Set(['step executed again after its recorded success', 'step.succeeded recorded twice', 'two succeeded attempts', 'compensation executed again after its recorded success', 'compensation.succeeded recorded twice']);
  const violationsOfDouble = violations.filter((v) => DOUBLE.has(v.kind)).length;
  measure('HTTP step calls at the target', `${calls.length} calls, ${keyCounts.size} distinct keys, ${calls.filter((c) => c.status === 503).length} answered 503`);
  must('steps (and compensations) executed more than once after a recorded success', violationsOfDouble === 0, String(violationsOfDouble), '0', `calls after success: ${afterSuccess}; duplicate success records: ${violationsOfDouble - afterSuccess}`);
  measure('attempts re-driven with the same key before any success (crash mid-call)', `${repeatedKeys.length} keys, ${repeatedCalls} extra calls`, `step.resumed events: ${resumed}; allowed by the contract: the target can deduplicate on Idempotency-Key`);
  must('calls whose Idempotency-Key names no recorded attempt of that run and step', badKeys + noAttemptRow === 0, String(badKeys + noAttemptRow), '0');
  must('HTTP steps recorded succeeded without reaching the target', succeededWithoutCall === 0, String(succeededWithoutCall), '0');
  measure('retries after a failed attempt (step.retrying)', String(retrying), 'target 503s and step timeouts');

  // ---------- approvals, compensation, resolves ----------
  const approvalRows = (await pool.query<{ run_id: string; status: string }>(
    `select distinct on (a.run_id) a.run_id, a.status from approvals a join runs r on r.id = a.run_id where r.playbook = 'chaos-approve' order by a.run_id, a.requested_at desc`,
  )).rows;
  const approvalOf = new Map(approvalRows.map((a) => [a.run_id, a.status]));
  const calledSteps = new Set(calls.filter((c) => c.key && !c.key.endsWith(':compensate')).map((c) => `${c.key!.split(':')[0]}:${c.step}`));
  const approveRuns = runs.filter((r) => r.playbook === 'chaos-approve');
  const approvalBad = approveRuns.filter((r) => {
    const a = approvalOf.get(r.id);
    if (a === 'approved') return r.status !== 'succeeded';
    if (a === 'rejected') return r.status !== 'aborted' || calledSteps.has(`${r.id}:change`);
    return true; // never asked, expired, cancelled: not in this scenario
  });
  must(
    'approvals: approved runs succeeded; rejected runs aborted without calling the step',
    approvalBad.length === 0,
    `${approveRuns.length - approvalBad.length} / ${approveRuns.length}`,
    'all',
    `approved ${approvalRows.filter((a) => a.status === 'approved').length}, rejected ${approvalRows.filter((a) => a.status === 'rejected').length}${approvalBad.length ? `; wrong: ${approvalBad.slice(0, 5).map((r) => `${r.id} (${r.status}, approval ${approvalOf.get(r.id) ?? 'none'})`).join(', ')}` : ''}`,
  );
  const undoRuns = runs.filter((r) => r.playbook === 'chaos-undo');
  const compensations = (await pool.query<{ run_id: string; compensation_status: string | null; status: string }>(
    `select s.run_id, s.compensation_status, s.status from run_steps s join runs r on r.id = s.run_id where r.playbook in ('chaos-undo', 'chaos-approve', 'chaos-resolve') and s.compensation_status is not null`,
  )).rows;
  const compensatedRun = new Set(compensations.filter((c) => c.compensation_status === 'succeeded' && c.status === 'compensated').map((c) => c.run_id));
  const undoBad = undoRuns.filter((r) => r.status !== 'failed' || !compensatedRun.has(r.id));
  must(
    'compensation: every run whose later step failed ended failed with its completed step compensated',
    undoBad.length === 0,
    `${undoRuns.length - undoBad.length} / ${undoRuns.length}`,
    'all',
    undoBad.length ? `wrong: ${undoBad.slice(0, 5).map((r) => `${r.id} (${r.status})`).join(', ')}` : `compensation calls cut short by kills and lost leases, then re-driven with the same key: ${calls.filter((c) => c.key?.endsWith(':compensate') && c.closedAt !== undefined).length}`,
  );
  const resolveRuns = runs.filter((r) => r.playbook === 'chaos-resolve');
  // A step that succeeded and has a `compensate` must have been compensated when the run was aborted.
  const uncompensated = new Set(
    (await pool.query<{ run_id: string }>(`select s.run_id from run_steps s join runs r on r.id = s.run_id where r.playbook = 'chaos-resolve' and r.status = 'aborted' and s.step_id = 'drain' and s.status = 'succeeded'`)).rows.map((x) => x.run_id),
  );
  const resolveBad = resolveRuns.filter((r) => !(r.status === 'succeeded' || ((r.status === 'aborted' || r.status === 'cancelled') && resolvedRuns.has(r.id) && !uncompensated.has(r.id))));
  must(
    'on_resolved: abort: runs whose alert resolved first were aborted (compensating what they did); the others finished',
    resolveBad.length === 0,
    `${resolveRuns.length - resolveBad.length} / ${resolveRuns.length}`,
    'all',
    `aborted by their resolve: ${resolveRuns.filter((r) => r.status === 'aborted' || r.status === 'cancelled').length}, finished before it: ${resolveRuns.filter((r) => r.status === 'succeeded').length}${resolveBad.length ? `; wrong: ${resolveBad.slice(0, 5).map((r) => `${r.id} (${r.status})`).join(', ')}` : ''}`,
  );

  // ---------- processes, leases ----------
  const takeoversMetric = input.processes.incarnations.reduce((a, i) => a + i.takeovers, 0);
  const workersPerRun = new Map<string, Set<string>>();
  for (const a of attempts) {
    if (!a.worker) continue;
    const set = workersPerRun.get(a.run_id) ?? new Set<string>();
    set.add(a.worker);
    workersPerRun.set(a.run_id, set);
  }
  for (const e of events) {
    if (e.kind !== 'run.started' || !e.worker) continue;
    const set = workersPerRun.get(e.run_id) ?? new Set<string>();
    set.add(e.worker);
    workersPerRun.set(e.run_id, set);
  }
  const multiWorker = [...workersPerRun.values()].filter((s) => s.size > 1).length;
  measure('server processes SIGKILLed / started', `${input.processes.kills} / ${input.processes.starts}`);
  const pauses = input.processes.pauses;
  const pausedBack = pauses.filter((p) => p.servedAgainAfterMs !== undefined);
  must(
    'processes paused (SIGSTOP) past their lease serve again after SIGCONT',
    pausedBack.length === pauses.length,
    `${pausedBack.length} / ${pauses.length}`,
    'all',
    pauses.map((p) => `pid ${p.pid} frozen ${(p.ms / 1000).toFixed(1)} s, ready again ${p.servedAgainAfterMs === undefined ? 'never' : `${p.servedAgainAfterMs} ms`} after SIGCONT`).join('; '),
  );
  measure('lease takeovers', `${takeoversMetric} (firebreak_lease_takeovers_total, summed over incarnations, last scrape)`, `step.resumed: ${resumed}; runs whose turns ran on more than one process (takeovers, and parked runs resuming anywhere): ${multiWorker}`);

  // ---------- Postgres restart ----------
  if (input.outage) {
    const o = input.outage;
    const after = new Map<number, number>();
    for (const a of attempts) {
      if (a.started_at.getTime() <= o.upAt) continue;
      const pid = pidOfWorker(a.worker);
      if (pid !== undefined) after.set(pid, (after.get(pid) ?? 0) + 1);
    }
    for (const e of events) {
      if (e.kind !== 'run.started' || e.time.getTime() <= o.upAt) continue;
      const pid = pidOfWorker(e.worker);
      if (pid !== undefined) after.set(pid, (after.get(pid) ?? 0) + 1);
    }
    const resumedSurvivors = o.survivors.filter((s) => (after.get(s.pid) ?? 0) > 0);
    const readyAgain = o.survivors.filter((s) => s.readyAgainAt !== undefined);
    const worstReady = Math.max(0, ...readyAgain.map((s) => s.readyAgainAt! - o.upAt));
    measure(o.mode === 'crash' ? 'Postgres killed hard mid-load (immediate shutdown, crash recovery on restart)' : 'Postgres restart mid-load', `down ${((o.upAt - o.downAt) / 1000).toFixed(1)} s; webhooks during the outage: ${sender.answered503DuringOutage} × 503, ${sender.answered202DuringOutage} × 202`);
    must('webhooks answered 503 while Postgres was down', sender.answered503DuringOutage > 0, String(sender.answered503DuringOutage), '> 0');
    must('processes alive through the restart ready again (/readyz 200) by themselves', readyAgain.length === o.survivors.length, `${readyAgain.length} / ${o.survivors.length}`, 'all', `slowest ${(worstReady / 1000).toFixed(1)} s after Postgres was back`);
    must('processes alive through the restart drove runs again (workers reconnected)', resumedSurvivors.length === o.survivors.length, `${resumedSurvivors.length} / ${o.survivors.length}`, 'all', o.survivors.map((s) => `pid ${s.pid}: ${after.get(s.pid) ?? 0} attempts/starts after`).join('; '));
  } else {
    measure('Postgres restart mid-load', 'skipped', input.outageSkippedReason);
  }

  // ---------- throughput ----------
  const window = (await pool.query<{ first: Date | null; last: Date | null }>('select min(created_at) as first, max(finished_at) as last from runs')).rows[0];
  if (window?.first && window.last) {
    const seconds = (window.last.getTime() - window.first.getTime()) / 1000;
    measure('throughput (first run stored -> last run finished)', `${(allRuns / seconds).toFixed(1)} runs/s, ${(attempts.length / seconds).toFixed(1)} step attempts/s over ${seconds.toFixed(1)} s`, 'when alerts arrive faster than this, runs queue and the latency below is mostly that queue');
  }

  // ---------- latency ----------
  const latencies: number[] = [];
  for (const r of runs) {
    const first = firstStepAt.get(r.id);
    if (first !== undefined) latencies.push(first - r.created_at.getTime());
  }
  latencies.sort((a, b) => a - b);
  const latency = { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN, n: latencies.length };
  const fromSend: number[] = [];
  for (const r of runs) {
    const first = firstStepAt.get(r.id);
    const sent = sender.firstSentAt.get(`${r.source}/${r.fingerprint}`);
    if (first !== undefined && sent !== undefined) fromSend.push(first - sent);
  }
  fromSend.sort((a, b) => a - b);
  measure('alert-to-first-step latency p50 / p99 (run stored -> first step.started)', `${latency.p50} ms / ${latency.p99} ms`, `max ${latency.max} ms over ${latency.n} runs; includes lease expiry after SIGKILL, the Postgres outage and concurrency queueing`);
  measure('the same from the first POST of the alert', `${percentile(fromSend, 50)} ms / ${percentile(fromSend, 99)} ms`, 'adds the sender\'s retries through kills and the outage');

  // ---------- audit ----------
  const audit = await verifyAudit(pool, { key: input.auditKey });
  must('timeline hash chains verify (audit verify)', auditPassed(audit), `${audit.chains} chains, ${audit.events} events, ${audit.broken.length + audit.brokenRecords.length} broken`, '0 broken');

  const mustHoldFailed = checks.filter((c) => c.ok === false).map((c) => c.name);
  const totals: Totals = {
    alertsSent: allAlerts.size,
    alertsAccepted: sender.accepted.size,
    episodesStored: episodes.length,
    alertsLost: lost.length,
    runsExpected: expectedRuns,
    runsCreated: allRuns,
    runsFinished: runs.length - unfinished.length,
    runsSucceeded: byStatus.succeeded ?? 0,
    doubleExecutions: violationsOfDouble,
    callsWithBadKeys: badKeys + noAttemptRow,
    reDrivenKeys: repeatedKeys.length,
    resumedEvents: resumed,
    takeovers: takeoversMetric,
    kills: input.processes.kills,
    brokenChains: audit.broken.length,
  };
  return { checks, totals, violations, unfinished, failedRuns, latency, mustHoldFailed };
}

export function markdownTable(checks: Check[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const lines = ['| measure | value | must hold | result |', '|---|---|---|---|'];
  for (const c of checks) {
    const result = c.ok === undefined ? '' : c.ok ? 'ok' : '**FAIL**';
    lines.push(`| ${cell(c.name)} | ${cell(c.value)}${c.note ? `<br><sub>${cell(c.note)}</sub>` : ''} | ${c.expected ? cell(c.expected) : ''} | ${result} |`);
  }
  return lines.join('\n');
}

/** Runs the stored episodes should have started: one per matching playbook, unless the episode was first stored resolved. */
export async function expectedRunCount(pool: Pool, notifications: Notification[]): Promise<number> {
  const alerts = new Map<string, ChaosAlert>();
  for (const n of notifications) for (const a of n.alerts) alerts.set(`${a.source}/${a.fingerprint}`, a);
  const { rows } = await pool.query<{ source: string; fingerprint: string; born_resolved: boolean }>(
    `select source, fingerprint, resolved_at is not null and resolved_at = first_seen_at as born_resolved from alert_episodes`,
  );
  let n = 0;
  for (const e of rows) {
    const alert = alerts.get(`${e.source}/${e.fingerprint}`);
    if (alert && !e.born_resolved) n += expectedPlaybooks(alert).length;
  }
  return n;
}
