import { createHash, randomUUID } from 'node:crypto';
import { interpolate } from '../expr/index.js';
import type { Alert } from '../ingest/index.js';
import type { Playbook } from '../playbooks/index.js';
import type { NewEvent } from '../timeline/index.js';
import type { PlannedRun, RunDefinition, RunTrigger } from './types.js';

export function runDefinition(playbook: Playbook): RunDefinition {
  return {
    name: playbook.name,
    description: playbook.description,
    onResolved: playbook.onResolved,
    ...(playbook.channel !== undefined && { channel: playbook.channel }),
    ...(playbook.concurrency !== undefined && { concurrency: playbook.concurrency }),
    ...(playbook.limits !== undefined && { limits: playbook.limits }),
    ...(playbook.circuitBreaker !== undefined && { circuitBreaker: playbook.circuitBreaker }),
    ...(Array.isArray(playbook.definition?.triggers) && { triggers: playbook.definition.triggers as unknown[] }),
    steps: playbook.steps,
  };
}

export interface PlanOptions {
  /** The playbook's revision (playbook_revisions.hash), stored before the run is. */
  revision: string;
  trigger: RunTrigger;
  alert: Alert | null;
  params?: Record<string, unknown>;
  startedBy?: string | null;
  dryRun?: boolean;
  defaultChannel?: string;
}

/** Render a template that only needs the alert and run (no steps yet); a failure keeps the raw text and says why. */
function renderEarly(template: string, vars: Record<string, unknown>): { value: string; error?: string } {
  try {
    return { value: interpolate(template, vars) };
  } catch (err) {
    return { value: template, error: (err as Error).message };
  }
}

/** Longest rendered key stored as is; a longer one is stored as its start and a digest of the whole. */
export const MAX_STORED_KEY_LENGTH = 200;

/**
 * A rendered key (concurrency, limits) or channel as Postgres can store and
 * index it, whatever the alert's labels hold: NUL and lone surrogates (text
 * and jsonb refuse them) become U+FFFD, as in the timeline; a value longer
 * than MAX_STORED_KEY_LENGTH (a btree entry holds at most ~2.7 kB) becomes
 * its first 64 characters and the SHA-256 of the whole value, so two
 * different keys stay different and one key always maps to the same text.
 * Without this, one alert with an odd label failed the whole notification.
 */
export function storableKey(value: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = value.toWellFormed().replace(/\u0000/g, '\uFFFD');
  if (clean.length <= MAX_STORED_KEY_LENGTH) return clean;
  const digest = createHash('sha256').update(clean).digest('hex');
  return `${clean.slice(0, 64).toWellFormed()}…sha256:${digest}`;
}

/**
 * Work out a new run (id, concurrency key, channel, first timeline events)
 * before anything is written, so ingest can create it in its one statement.
 */
export function planRun(playbook: Playbook, options: PlanOptions): PlannedRun {
  const runId = randomUUID();
  const run = { id: runId, trigger: options.trigger, started_by: options.startedBy ?? null, dry_run: options.dryRun ?? false, params: options.params ?? {}, playbook: playbook.name };
  const vars = { alert: options.alert ?? {}, run, steps: {}, secrets: {} };
  const warnings: string[] = [];
  let concurrencyKey: string | null = null;
  if (playbook.concurrency) {
    const key = renderEarly(playbook.concurrency.key, vars);
    // An unrenderable key falls back to one shared key per playbook: safer to serialise than to run unbounded.
    if (key.error) warnings.push(`concurrency.key: ${key.error}; using one key for the whole playbook`);
    concurrencyKey = `${playbook.name}:${key.error ? '*' : storableKey(key.value)}`;
  }
  let limitKey: string | null = null;
  if (playbook.limits || playbook.circuitBreaker) {
    limitKey = '';
    if (playbook.limits?.key) {
      const key = renderEarly(playbook.limits.key, vars);
      // Like concurrency: an unrenderable key counts against the whole playbook.
      if (key.error) warnings.push(`limits.key: ${key.error}; counting against the whole playbook`);
      else limitKey = storableKey(key.value);
    }
  }
  let channel: string | null = options.defaultChannel ?? null;
  if (playbook.channel) {
    const rendered = renderEarly(playbook.channel, vars);
    if (rendered.error) warnings.push(`channel: ${rendered.error}; using the default channel`);
    else channel = storableKey(rendered.value);
  }
  const genesis: NewEvent[] = [
    {
      kind: 'run.created',
      actor: options.startedBy ?? 'system',
      data: {
        playbook: playbook.name,
        playbookHash: playbook.sourceHash,
        revision: options.revision,
        trigger: options.trigger,
        dryRun: options.dryRun ?? false,
        ...(options.alert && {
          alert: {
            source: options.alert.source,
            fingerprint: options.alert.fingerprint,
            status: options.alert.status,
            startsAt: options.alert.startsAt,
            summary: options.alert.summary,
            severity: options.alert.severity,
            labels: options.alert.labels,
          },
        }),
        ...(options.params && Object.keys(options.params).length > 0 && { params: options.params }),
        ...(concurrencyKey && { concurrencyKey, concurrencyLimit: playbook.concurrency!.limit }),
        ...(warnings.length > 0 && { warnings }),
      },
    },
  ];
  return {
    runId,
    playbook: playbook.name,
    definition: runDefinition(playbook),
    revision: options.revision,
    playbookHash: playbook.sourceHash,
    concurrencyKey,
    concurrencyLimit: playbook.concurrency?.limit ?? null,
    limitKey,
    channel,
    genesis,
  };
}
