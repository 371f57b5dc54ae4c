/**
 * The one zod schema of a playbook file. Its input side is the YAML shape (and the
 * JSON Schema for editors); its output is the parsed model the engine uses, with
 * durations in ms, matchers compiled and camelCase names.
 */
import { validateDetailed } from 'node-cron';
import { z } from 'zod';
import { ALERT_SOURCES, type AlertSource } from '../ingest/types.js';
import { DURATION_PATTERN, parseDuration } from './duration.js';
import { parseMatcher, type Matcher } from './matchers.js';

export type AlertTrigger = { kind: 'alert'; source?: AlertSource; matchers: Matcher[] };
export type ScheduleTrigger = { kind: 'schedule'; schedule: string; timezone?: string };
export type Trigger = AlertTrigger | ScheduleTrigger;

export interface RetryPolicy {
  /** Total attempts, the first one included (1 = no retry). */
  attempts: number;
  /** Base delay before the 2nd attempt; doubles each attempt, with jitter, up to `maxBackoffMs`. */
  backoffMs: number;
  maxBackoffMs: number;
}

export interface PlaybookStep {
  id: string;
  action: string;
  /** Unrendered: strings may hold `${{ expr }}`. */
  with: Record<string, unknown>;
  impact: 'low' | 'high';
  /** Bare CEL expression (a `${{ }}` wrapper is removed). */
  when?: string;
  timeoutMs?: number;
  retry: RetryPolicy;
  onFailure: 'abort' | 'continue';
  compensate?: { action: string; with: Record<string, unknown> };
  approval: 'policy' | 'required' | 'never';
  approvalTimeoutMs: number;
  onTimeout: 'abort' | 'skip' | 'escalate';
  escalateTo: string[];
}

/** The parsed file, before the loader adds where it came from. */
export interface PlaybookSpec {
  name: string;
  description: string;
  triggers: Trigger[];
  concurrency?: { key: string; limit: number };
  limits?: RunLimits;
  circuitBreaker?: CircuitBreaker;
  channel?: string;
  onResolved: 'continue' | 'abort';
  steps: PlaybookStep[];
}

/** Storm protection (docs/safety-rails.md), counted per rendered `key` ('' = the whole playbook). */
export interface RunLimits {
  /** Unrendered, like concurrency.key; absent: one key for the whole playbook. */
  key?: string;
  /** At most `maxRuns` runs started per sliding window of `perMs`. */
  maxRuns?: number;
  perMs?: number;
  /** After a run for the key ends, new triggers wait this long. */
  cooldownMs?: number;
}

/** After `failures` failed runs in a row (per limits key), `then` happens: the playbook is paused until a person resumes it. */
export interface CircuitBreaker {
  failures: number;
  then: 'pause';
}

export const DEFAULT_APPROVAL_TIMEOUT_MS = 30 * 60_000;
export const DEFAULT_BACKOFF_MS = 10_000;
export const DEFAULT_MAX_BACKOFF_MS = 5 * 60_000;

const duration = z
  .string()
  .regex(new RegExp(DURATION_PATTERN), 'must be a duration like 500ms, 30s, 2m, 1h or 1h30m')
  .transform((s) => parseDuration(s)!);

const withBlock = z
  .record(z.string(), z.unknown())
  .default({})
  .meta({ description: 'Action input; strings may contain ${{ expr }}. A string that is exactly one ${{ expr }} keeps its type.' });

const matcher = z
  .string()
  .meta({ description: 'Alertmanager matcher: name="v", name!="v", name=~"regex", name!~"regex" (regexes fully anchored)' })
  .transform((text, ctx): Matcher => {
    try {
      return parseMatcher(text);
    } catch (e) {
      ctx.issues.push({ code: 'custom', message: (e as Error).message, input: text });
      return z.NEVER;
    }
  });

function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

// One object rather than a union so a mistake gets a precise message instead of
// zod's "no union member matched"; the refinement below enforces the two shapes.
const trigger = z
  .strictObject({
    source: z.enum(ALERT_SOURCES).optional().meta({ description: 'Only alerts from this source; any source when absent' }),
    matchers: z.array(matcher).optional().meta({ description: 'All must hold on the alert labels' }),
    schedule: z.string().optional().meta({ description: 'Cron expression (5 fields, or 6 with seconds)' }),
    timezone: z.string().optional().meta({ description: 'IANA time zone of `schedule`, e.g. Europe/Berlin; UTC by default' }),
  })
  .superRefine((t, ctx) => {
    if (t.schedule !== undefined) {
      if (t.source !== undefined || t.matchers !== undefined) ctx.addIssue({ code: 'custom', message: 'a trigger has either `schedule` or `source`/`matchers`, not both' });
      const cron = validateDetailed(t.schedule);
      if (!cron.valid) ctx.addIssue({ code: 'custom', path: ['schedule'], message: `bad cron expression "${t.schedule}": ${cron.errors.map((e) => e.message).join('; ')}` });
      if (t.timezone !== undefined && !validTimezone(t.timezone)) ctx.addIssue({ code: 'custom', path: ['timezone'], message: `unknown time zone "${t.timezone}"` });
    } else {
      if (t.timezone !== undefined) ctx.addIssue({ code: 'custom', path: ['timezone'], message: '`timezone` only applies to a `schedule` trigger' });
      if (t.source === undefined && t.matchers === undefined) ctx.addIssue({ code: 'custom', message: 'a trigger needs `matchers` (and optionally `source`), or `schedule`' });
    }
  })
  .transform((t): Trigger =>
    t.schedule !== undefined
      ? { kind: 'schedule', schedule: t.schedule, ...(t.timezone !== undefined && { timezone: t.timezone }) }
      : { kind: 'alert', ...(t.source !== undefined && { source: t.source }), matchers: t.matchers ?? [] },
  );

export const stepSchema = z
  .strictObject({
    id: z.string().regex(/^[a-z_][a-z0-9_]*$/, 'must match [a-z_][a-z0-9_]* (it is used as steps.<id> in expressions)'),
    action: z.string().min(1).meta({ description: 'http.request, prometheus.query, prometheus.wait, slack.message, wait, note, exec, or a custom action' }),
    with: withBlock,
    impact: z.enum(['low', 'high']).default('low').meta({ description: 'Input to the policy' }),
    when: z.string().min(1).optional().meta({ description: 'CEL condition; the step is skipped when false' }),
    timeout: duration.optional(),
    retry: z
      .strictObject({
        attempts: z.int().min(1).max(100).meta({ description: 'Total attempts, the first included' }),
        backoff: duration.optional().meta({ description: 'Delay before the 2nd attempt, doubled each time, with jitter (default 10s)' }),
        max_backoff: duration.optional().meta({ description: 'Cap on the delay (default 5m)' }),
      })
      .optional(),
    on_failure: z.enum(['abort', 'continue']).default('abort'),
    compensate: z.strictObject({ action: z.string().min(1), with: withBlock }).optional().meta({ description: 'Runs, newest first, if the run aborts later' }),
    approval: z.enum(['policy', 'required', 'never']).default('policy'),
    approval_timeout: duration.prefault(`${DEFAULT_APPROVAL_TIMEOUT_MS / 60_000}m`),
    on_timeout: z.enum(['abort', 'skip', 'escalate']).default('abort'),
    escalate_to: z.array(z.string().min(1)).optional().meta({ description: 'Approvers asked when an approval times out with on_timeout: escalate' }),
  })
  .superRefine((s, ctx) => {
    if (s.on_timeout === 'escalate' && !s.escalate_to?.length) ctx.addIssue({ code: 'custom', path: ['on_timeout'], message: '`on_timeout: escalate` needs `escalate_to` (a list of approvers)' });
    if (s.retry?.backoff !== undefined && s.retry.max_backoff !== undefined && s.retry.max_backoff < s.retry.backoff) {
      ctx.addIssue({ code: 'custom', path: ['retry', 'max_backoff'], message: 'must not be shorter than `backoff`' });
    }
  })
  .transform((s): PlaybookStep => {
    const backoffMs = s.retry?.backoff ?? DEFAULT_BACKOFF_MS;
    return {
      id: s.id,
      action: s.action,
      with: s.with,
      impact: s.impact,
      ...(s.when !== undefined && { when: unwrapExpression(s.when) }),
      ...(s.timeout !== undefined && { timeoutMs: s.timeout }),
      retry: { attempts: s.retry?.attempts ?? 1, backoffMs, maxBackoffMs: s.retry?.max_backoff ?? Math.max(backoffMs, DEFAULT_MAX_BACKOFF_MS) },
      onFailure: s.on_failure,
      ...(s.compensate && { compensate: s.compensate }),
      approval: s.approval,
      approvalTimeoutMs: s.approval_timeout,
      onTimeout: s.on_timeout,
      escalateTo: s.escalate_to ?? [],
    };
  });

/** A step id used twice, reported at each later use. */
export function duplicateStepIds(steps: ReadonlyArray<{ id: string }>): Array<{ path: Array<string | number>; message: string }> {
  const seen = new Map<string, number>();
  const issues: Array<{ path: Array<string | number>; message: string }> = [];
  steps.forEach((s, i) => {
    const first = seen.get(s.id);
    if (first !== undefined) issues.push({ path: ['steps', i, 'id'], message: `duplicate step id "${s.id}" (first used by steps[${first}])` });
    else if (s.id !== '') seen.set(s.id, i);
  });
  return issues;
}

/** Authors coming from GitHub Actions write `when: ${{ expr }}`; accept it as the bare expression. */
export function unwrapExpression(text: string): string {
  const m = /^\s*\$\{\{([\s\S]*)\}\}\s*$/.exec(text);
  return m && !m[1]!.includes('${{') ? m[1]!.trim() : text.trim();
}

export const playbookSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9-]+$/, 'must match [a-z0-9-]+').max(100).meta({ description: 'Unique across all playbooks' }),
    description: z.string().default(''),
    triggers: z.array(trigger).default([]).meta({ description: 'Alert or schedule triggers; none: manual runs only' }),
    concurrency: z
      .strictObject({
        key: z.string().min(1).meta({ description: 'e.g. ${{ alert.labels.service }}' }),
        limit: z.int().min(1).default(1),
      })
      .optional()
      .meta({ description: 'At most `limit` active runs per key' }),
    limits: z
      .strictObject({
        key: z.string().min(1).optional().meta({ description: 'What runs are counted per, e.g. ${{ alert.labels.service }}; default: the whole playbook' }),
        max_runs: z.int().min(1).optional().meta({ description: 'Runs started per sliding window `per`' }),
        per: duration.optional().meta({ description: 'The sliding window for max_runs, e.g. 1h' }),
        cooldown: duration.optional().meta({ description: 'After a run for the key ends, new triggers wait this long, e.g. 10m' }),
      })
      .superRefine((l, ctx) => {
        if ((l.max_runs === undefined) !== (l.per === undefined)) ctx.addIssue({ code: 'custom', path: [l.max_runs === undefined ? 'max_runs' : 'per'], message: '`max_runs` and `per` go together: at most max_runs runs per window' });
      })
      .optional()
      .meta({ description: 'Storm protection: runs started per window and a cooldown, counted per key (alert runs only)' }),
    circuit_breaker: z
      .strictObject({
        failures: z.int().min(1).meta({ description: 'This many failed runs in a row (per limits key) trip the breaker' }),
        then: z.enum(['pause']).default('pause').meta({ description: 'pause: pause the playbook until a person resumes it' }),
      })
      .optional()
      .meta({ description: 'Stop a playbook that keeps failing' }),
    channel: z.string().min(1).optional().meta({ description: 'Slack channel for the run, e.g. "#inc-${{ alert.labels.service }}"' }),
    on_resolved: z.enum(['continue', 'abort']).default('continue').meta({ description: 'What a run does when its alert resolves' }),
    steps: z.array(stepSchema).min(1),
  })
  .superRefine((p, ctx) => {
    for (const issue of duplicateStepIds(p.steps)) ctx.addIssue({ code: 'custom', ...issue });
  })
  .transform(
    (p): PlaybookSpec => ({
      name: p.name,
      description: p.description,
      triggers: p.triggers,
      ...(p.concurrency && { concurrency: p.concurrency }),
      ...(p.limits && {
        limits: {
          ...(p.limits.key !== undefined && { key: p.limits.key }),
          ...(p.limits.max_runs !== undefined && { maxRuns: p.limits.max_runs, perMs: p.limits.per! }),
          ...(p.limits.cooldown !== undefined && { cooldownMs: p.limits.cooldown }),
        },
      }),
      ...(p.circuit_breaker && { circuitBreaker: { failures: p.circuit_breaker.failures, then: p.circuit_breaker.then } }),
      ...(p.channel !== undefined && { channel: p.channel }),
      onResolved: p.on_resolved,
      steps: p.steps,
    }),
  );
