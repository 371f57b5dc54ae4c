/**
 * Every problem of a file in one pass. When the schema refuses a playbook,
 * the checks that need a parsed model (known actions, expressions, step
 * references, duplicate ids) still run on what can be read of it, so a
 * duplicate step id does not hide the unknown action and the broken `when:`
 * below it. A check's finding is left out where the schema already reported
 * that field (or a field around it): one problem, said once.
 */
import { checkPlaybook, type ActionCatalog, type PathIssue, type PathSegment } from './check.js';
import { DEFAULT_APPROVAL_TIMEOUT_MS, DEFAULT_BACKOFF_MS, DEFAULT_MAX_BACKOFF_MS, duplicateStepIds, stepSchema, unwrapExpression, type PlaybookSpec, type PlaybookStep } from './schema.js';

type Loose = Record<string, unknown>;

function isRecord(value: unknown): value is Loose {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** A step as far as it can be read; fields that cannot are left at harmless defaults (the schema reports them). */
function readableStep(raw: unknown): PlaybookStep {
  const parsed = stepSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const r = isRecord(raw) ? raw : {};
  const when = text(r.when)?.trim() ? unwrapExpression(text(r.when)!) : undefined;
  const compensate = isRecord(r.compensate) && text(r.compensate.action) ? { action: text(r.compensate.action)!, with: isRecord(r.compensate.with) ? r.compensate.with : {} } : undefined;
  return {
    id: text(r.id) ?? '',
    action: text(r.action) ?? '',
    with: isRecord(r.with) ? r.with : {},
    impact: 'low',
    ...(when !== undefined && { when }),
    retry: { attempts: 1, backoffMs: DEFAULT_BACKOFF_MS, maxBackoffMs: DEFAULT_MAX_BACKOFF_MS },
    onFailure: 'abort',
    ...(compensate && { compensate }),
    approval: 'policy',
    approvalTimeoutMs: DEFAULT_APPROVAL_TIMEOUT_MS,
    onTimeout: 'abort',
    escalateTo: [],
  };
}

function readableSpec(raw: Loose): PlaybookSpec {
  const concurrencyKey = isRecord(raw.concurrency) ? text(raw.concurrency.key) : undefined;
  return {
    name: text(raw.name) ?? '',
    description: '',
    triggers: [],
    ...(concurrencyKey !== undefined && { concurrency: { key: concurrencyKey, limit: 1 } }),
    ...(text(raw.channel) !== undefined && { channel: text(raw.channel)! }),
    onResolved: 'continue',
    steps: Array.isArray(raw.steps) ? raw.steps.map(readableStep) : [],
  };
}

const key = (path: readonly PathSegment[]) => path.map(String).join('\u0000');

function within(path: readonly PathSegment[], prefix: readonly PathSegment[]): boolean {
  return prefix.length <= path.length && prefix.every((seg, i) => String(seg) === String(path[i]));
}

/**
 * The schema's issues plus the checks' findings on the readable part of a
 * playbook the schema refused, each problem once.
 */
export function issuesOfRefusedPlaybook(raw: unknown, schemaIssues: PathIssue[], actions: ActionCatalog): PathIssue[] {
  if (!isRecord(raw)) return schemaIssues;
  const spec = readableSpec(raw);
  const findings = [...duplicateStepIds(spec.steps), ...checkPlaybook(spec, actions)];
  const seen = new Set(schemaIssues.map((i) => `${key(i.path)}\u0001${i.message}`));
  const extra = findings.filter((f) => {
    if (schemaIssues.some((i) => within(f.path, i.path))) return false;
    const id = `${key(f.path)}\u0001${f.message}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  return [...schemaIssues, ...extra];
}
