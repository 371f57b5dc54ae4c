/**
 * Starting dry runs (POST /api/runs with "dryRun": true): a named playbook,
 * or an alert (normalised, a raw source payload, or a stored episode's) that
 * goes through matching like a delivered one, against the server's playbooks
 * or against playbook sources sent with the request (`replay --diff`).
 */
import { basename } from 'node:path';
import { z } from 'zod';
import type { DryRunOptions, Engine } from '../engine/index.js';
import { NotFoundError, ValidationError, type FieldProblem } from '../errors.js';
import {
  ALERT_SOURCES,
  alertmanagerPayload,
  datadogPayload,
  genericPayload,
  grafanaPayload,
  normaliseAlertmanager,
  normaliseDatadog,
  normaliseGeneric,
  normaliseGrafana,
  normalisePagerDuty,
  pagerdutyPayload,
  parseWith,
  type Alert,
  type AlertSource,
} from '../ingest/index.js';
import { withheldSecret } from '../expr/index.js';
import { formatProblem, parsePlaybookSource, type Playbook, type Problem } from '../playbooks/index.js';
import type { Queryable } from '../store/index.js';
import type { NewEvent } from '../timeline/index.js';

const MAX_PLAYBOOK_SOURCE = 256 * 1024;

const scriptedAnswer = z.enum(['approve', 'reject', 'expire', 'cancel']);

/** The dry-run fields of a POST /api/runs body (besides playbook, params, user, dryRun, idempotencyKey). */
export const dryRunFields = {
  /** A normalised Alert, or (with `source`) the payload as that source sends it. */
  alert: z.unknown().optional(),
  source: z.enum(ALERT_SOURCES).optional(),
  /** Replay the alert of a stored episode (GET /api/alerts lists them). */
  episodeId: z.number().int().positive().optional(),
  /** Answer for calls a dry run does not make; default 200 `{}`. */
  stub: z
    .strictObject({
      status: z.number().int().min(100).max(599).default(200),
      headers: z.record(z.string(), z.string()).default({}),
      body: z.json().default({}),
    })
    .optional(),
  /** Per step id: output fields of the stubbed call, e.g. `{ "error_rate": { "value": 0.08 } }`. */
  stubs: z.record(z.string(), z.record(z.string(), z.json())).optional(),
  /** Record gather steps (prometheus.*, GET/HEAD) as would-call too, answered by the stub. */
  noGather: z.boolean().optional(),
  /** With episodeId: replay each matching playbook against the episode's recorded run of it (`firebreak replay --since`). */
  asRecorded: z.boolean().optional(),
  /** Scripted approval answers per step id (one per round); an approval nobody scripted stops the dry run. */
  answers: z
    .record(z.string(), z.union([scriptedAnswer, z.array(scriptedAnswer).min(1).max(5)]).transform((a) => (Array.isArray(a) ? a : [a])))
    .optional(),
  /** Never wait: `wait` steps end at once, retries follow without backoff, `prometheus.wait` is not polled. */
  noWait: z.boolean().optional(),
  /** Do not post the dry runs to Slack. */
  quiet: z.boolean().optional(),
  /** The time the policy sees as `now` (RFC 3339). */
  policyNow: z.string().refine((v) => !Number.isNaN(Date.parse(v)), 'must be an RFC 3339 timestamp').optional(),
  /** Playbook files to use instead of the server's (`firebreak replay --diff <dir>`). */
  playbooks: z
    .array(z.strictObject({ file: z.string().min(1).max(255), source: z.string().max(MAX_PLAYBOOK_SOURCE) }))
    .max(200)
    .optional(),
};

export const startRunBody = z.object({
  playbook: z.string().min(1).optional(),
  params: z.record(z.string(), z.unknown()).default({}),
  // Never an identity: when given it must name who authenticated (else 400); see src/access.
  user: z.string().trim().min(1).max(200).optional(),
  as: z.string().trim().min(1).max(200).optional(),
  // Accepted from older clients and ignored: the actor says how the request authenticated.
  via: z.enum(['api', 'cli', 'console']).optional(),
  dryRun: z.boolean().default(false),
  idempotencyKey: z.string().min(1).max(200).optional(),
  ...dryRunFields,
});

export type StartRunBody = z.output<typeof startRunBody>;

/** Whether the body sets any field only a dry run may (so a plain run request with one is refused). */
export function usesDryRunFields(body: StartRunBody): boolean {
  return [body.stub, body.stubs, body.noGather, body.answers, body.noWait, body.quiet, body.policyNow, body.asRecorded].some((v) => v !== undefined);
}

/** Whether the body asks for more than a plain run of a named playbook (the replay answer shape). */
export function isReplayRequest(body: StartRunBody): boolean {
  return body.alert !== undefined || body.episodeId !== undefined || body.playbooks !== undefined;
}

const normalisedAlert = z.object({
  source: z.enum(ALERT_SOURCES),
  fingerprint: z.string().min(1).max(200),
  status: z.enum(['firing', 'resolved']).default('firing'),
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()).default({}),
  startsAt: z.string().refine((v) => !Number.isNaN(Date.parse(v)), 'must be an RFC 3339 timestamp'),
  endsAt: z.string().nullable().default(null),
  summary: z.string().default(''),
  severity: z.string().default(''),
  generatorURL: z.string().default(''),
  raw: z.unknown().optional(),
});

function prefixed<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ValidationError) {
      throw new ValidationError(e.message, e.details.map((d) => ({ path: d.path === '(body)' ? path : `${path}.${d.path}`, message: d.message })));
    }
    throw e;
  }
}

/** The alerts in a payload as `source` sends it, normalised like the webhook does. */
export function normalisePayload(source: AlertSource, payload: unknown, now = new Date()): Alert[] {
  return prefixed('alert', () => {
    switch (source) {
      case 'alertmanager':
        return normaliseAlertmanager(parseWith(alertmanagerPayload, payload, 'Alertmanager webhook payload'));
      case 'grafana':
        return normaliseGrafana(parseWith(grafanaPayload, payload, 'Grafana webhook payload'));
      case 'pagerduty':
        return normalisePagerDuty(parseWith(pagerdutyPayload, payload, 'PagerDuty v3 webhook payload')).map(({ startsAtKnown: _k, ...a }) => a);
      case 'datadog':
        return normaliseDatadog(parseWith(datadogPayload, payload, 'Datadog webhook payload')).map(({ startsAtKnown: _k, ...a }) => a);
      case 'generic':
        return normaliseGeneric(parseWith(genericPayload, payload, 'generic alert'), now).map(({ startsAtKnown: _k, ...a }) => a);
    }
  });
}

function normaliseAlertInput(alert: unknown, source: AlertSource | undefined): Alert[] {
  if (source) return normalisePayload(source, alert);
  if (alert && typeof alert === 'object' && 'source' in alert && 'fingerprint' in alert) {
    const a = prefixed('alert', () => parseWith(normalisedAlert, alert, 'normalised alert'));
    return [{ ...a, startsAt: new Date(a.startsAt).toISOString(), raw: a.raw ?? null }];
  }
  throw new ValidationError('alert: say which source sent this payload, or send a normalised alert', [
    { path: 'source', message: `required for a raw payload: one of ${ALERT_SOURCES.join(', ')}` },
  ]);
}

const RECORDED_RUN_OF = `
  select id from runs where episode_id = $1::bigint and playbook = $2::text and not dry_run
  order by created_at desc, id limit 1`;

/** The episode's (latest) real run of a playbook: what a replay compares with. */
async function recordedRunOf(db: Queryable, episodeId: number, playbook: string): Promise<string | undefined> {
  return (await db.query<{ id: string }>(RECORDED_RUN_OF, [episodeId, playbook])).rows[0]?.id;
}

const EPISODE_ALERT = `select id, source, alert from alert_episodes where id = $1::bigint`;

async function episodeAlert(db: Queryable, id: number): Promise<Alert> {
  const { rows } = await db.query<{ id: number; source: string; alert: Alert }>(EPISODE_ALERT, [id]);
  const row = rows[0];
  if (!row) throw new NotFoundError(`alert episode ${id} not found`);
  // Replaying a resolved episode means replaying what fired.
  return { ...row.alert, status: 'firing' };
}

/** Playbook files sent with the request, checked against the server's actions; any problem is a 400 naming file:line. */
export function parseSentPlaybooks(engine: Pick<Engine, 'actions'>, files: Array<{ file: string; source: string }>): Playbook[] {
  const problems: Problem[] = [];
  const playbooks: Playbook[] = [];
  const names = new Map<string, string>();
  for (const f of files) {
    const file = basename(f.file);
    if (!/\.ya?ml$/i.test(file)) continue;
    const res = parsePlaybookSource(file, f.source, engine.actions);
    problems.push(...res.problems);
    if (!res.playbook) continue;
    const other = names.get(res.playbook.name);
    if (other) {
      problems.push({ file, line: 1, message: `name: duplicate playbook name "${res.playbook.name}" (already used by ${other})` });
      continue;
    }
    names.set(res.playbook.name, file);
    playbooks.push(res.playbook);
  }
  if (problems.length > 0) {
    throw new ValidationError(
      `the sent playbooks have ${problems.length} problem(s)`,
      problems.map((p): FieldProblem => ({ path: `playbooks (${p.file}${p.line > 0 ? `:${p.line}` : ''})`, message: formatProblem(p) })),
    );
  }
  return playbooks;
}

export interface StartedDryRun {
  runId: string;
  created: boolean;
  playbook: string;
  /** False when a playbook was named that the alert would not start. */
  matched: boolean;
  fingerprint: string | null;
  /** The recorded run it replays (asRecorded). */
  replayOf?: string;
}

export interface AlertOutcome {
  source: string;
  fingerprint: string;
  status: string;
  startsAt: string;
  summary: string;
  /** Playbooks it matched (or the one named) and the dry runs started for them. */
  runs: Array<{ playbook: string; runId: string; matched: boolean }>;
  note?: string;
}

export interface DryRunsResult {
  runs: StartedDryRun[];
  alerts: AlertOutcome[];
}

/** The shape checks of a dry-run request, before anyone is asked whether it may run (400s first). */
export function checkDryRunBody(body: StartRunBody): void {
  if (!body.dryRun) {
    throw new ValidationError('alert, episodeId, playbooks, stub, stubs, answers, noGather, noWait, quiet and policyNow are for dry runs', [{ path: 'dryRun', message: 'must be true' }]);
  }
  if (body.asRecorded && body.episodeId === undefined) {
    throw new ValidationError('asRecorded replays an episode against its recorded runs', [{ path: 'episodeId', message: 'required with asRecorded' }]);
  }
  if (body.alert !== undefined && body.episodeId !== undefined) {
    throw new ValidationError('give either alert or episodeId, not both', [{ path: 'episodeId', message: 'not with alert' }]);
  }
  if (body.source && body.alert === undefined) {
    throw new ValidationError('source names the sender of an alert payload', [{ path: 'alert', message: 'required with source' }]);
  }
}

/**
 * Start the dry runs a request asks for: one per (firing alert, matching
 * playbook), or of the named playbook. Runs of an alert run as the alert's
 * run would (trigger `alert`, no starter), so the policy sees the same input;
 * who asked (`requestedBy`, the authenticated actor) is kept in the dry-run
 * options and the first event's actor; `events` (the access decision) follow
 * the first events of every run created.
 */
export async function startDryRuns(deps: { engine: Engine; db: Queryable }, body: StartRunBody, requestedBy: string, events: NewEvent[] = []): Promise<DryRunsResult> {
  const { engine, db } = deps;
  checkDryRunBody(body);
  const sent = body.playbooks ? parseSentPlaybooks(engine, body.playbooks) : undefined;
  const catalog = sent ?? undefined;
  const lookup = (name: string): Playbook => {
    if (!sent) return engine.findPlaybook(name);
    const p = sent.find((x) => x.name === name);
    if (!p) throw new NotFoundError(`playbook ${name} is not among the sent playbooks (${sent.map((x) => x.name).join(', ') || 'none'})`);
    return p;
  };
  const baseOptions: DryRunOptions = {
    requestedBy,
    playbooksFrom: sent ? 'request' : 'server',
    // A playbook from the request is not the operator's: no secret values (see the executor's variables).
    ...(sent && { secrets: `withheld: a playbook sent with the request gets no secrets; \${{ secrets.NAME }} renders as "${withheldSecret('NAME')}"` }),
    ...(body.noGather !== undefined && { noGather: body.noGather }),
    ...(body.stub && { stub: body.stub }),
    ...(body.stubs && { stubs: body.stubs }),
    ...(body.answers && { answers: body.answers }),
    // A replay of recorded runs never waits (see src/engine/scripted.ts).
    ...((body.noWait !== undefined || body.asRecorded) && { noWait: body.noWait ?? true }),
    ...(body.quiet !== undefined && { quiet: body.quiet }),
    ...(body.policyNow && { policyNow: new Date(body.policyNow).toISOString() }),
  };

  let alerts: Alert[] | undefined;
  let options = baseOptions;
  if (body.episodeId !== undefined) {
    alerts = [await episodeAlert(db, body.episodeId)];
    options = { ...options, episodeId: body.episodeId, alertSource: alerts[0]!.source };
  } else if (body.alert !== undefined) {
    alerts = normaliseAlertInput(body.alert, body.source);
    if (alerts.length === 0) throw new ValidationError('the alert payload holds no alerts', [{ path: 'alert', message: 'no alerts' }]);
    options = { ...options, alertSource: alerts[0]!.source };
  }

  const runs: StartedDryRun[] = [];
  if (!alerts) {
    if (!body.playbook) throw new ValidationError('name a playbook, or give an alert or episodeId to match', [{ path: 'playbook', message: 'required without alert or episodeId' }]);
    const playbook = lookup(body.playbook);
    const r = await engine.startRun({
      playbook: playbook.name,
      ...(sent && { definition: playbook }),
      params: body.params,
      startedBy: requestedBy,
      dryRun: true,
      dryRunOptions: options,
      events,
      ...(body.idempotencyKey && { dedupKey: `api:${body.idempotencyKey}` }),
    });
    runs.push({ runId: r.runId, created: r.created, playbook: playbook.name, matched: true, fingerprint: null });
    return { runs, alerts: [] };
  }

  const outcomes: AlertOutcome[] = [];
  for (const alert of alerts) {
    const outcome: AlertOutcome = { source: alert.source, fingerprint: alert.fingerprint, status: alert.status, startsAt: alert.startsAt, summary: alert.summary, runs: [] };
    outcomes.push(outcome);
    if (alert.status !== 'firing') {
      outcome.note = 'resolved: a resolved alert starts no run';
      continue;
    }
    let targets: Array<{ playbook: Playbook; matched: boolean }>;
    if (body.playbook) {
      const playbook = lookup(body.playbook);
      targets = [{ playbook, matched: engine.matchingPlaybooks(alert, [playbook]).length > 0 }];
      if (!targets[0]!.matched) outcome.note = `playbook ${playbook.name} does not match this alert; dry-run anyway because it was named`;
    } else {
      targets = engine.matchingPlaybooks(alert, catalog).map((playbook) => ({ playbook, matched: true }));
      if (targets.length === 0) outcome.note = 'no playbook matches this alert';
    }
    for (const { playbook, matched } of targets) {
      const recorded = body.asRecorded && body.episodeId !== undefined ? await recordedRunOf(db, body.episodeId, playbook.name) : undefined;
      const r = await engine.startRun({
        playbook: playbook.name,
        ...(sent && { definition: playbook }),
        params: body.params,
        // As the alert's own run: trigger alert, nobody started it.
        trigger: 'alert',
        startedBy: null,
        alert,
        dryRun: true,
        // Replayed against the episode's recorded run of this playbook; none (it did not run then): approvals stop it.
        dryRunOptions: body.asRecorded ? { ...options, ...(recorded ? { replayOf: recorded } : { answers: options.answers ?? {} }) } : options,
        events,
        ...(body.idempotencyKey && { dedupKey: `api:${body.idempotencyKey}:${alert.source}:${alert.fingerprint}:${alert.startsAt}:${playbook.name}` }),
      });
      runs.push({ runId: r.runId, created: r.created, playbook: playbook.name, matched, fingerprint: alert.fingerprint, ...(recorded && { replayOf: recorded }) });
      outcome.runs.push({ playbook: playbook.name, runId: r.runId, matched });
    }
  }
  return { runs, alerts: outcomes };
}
