/** Public surface of playbooks: the file format, the loader and alert matching. */
import type { Alert } from '../ingest/types.js';
import { matchersHold } from './matchers.js';
import type { ScheduleTrigger, Trigger } from './schema.js';

export { formatProblem, isError, loadPlaybooks, parsePlaybookSource, validatePlaybooks } from './loader.js';
export type { Playbook, Problem } from './loader.js';
export type { ActionCatalog } from './check.js';
export { playbookSchema } from './schema.js';
export type { AlertTrigger, CircuitBreaker, PlaybookSpec, PlaybookStep, RetryPolicy, RunLimits, ScheduleTrigger, Trigger } from './schema.js';
export { parseMatcher, matcherHolds } from './matchers.js';
export type { Matcher, MatchOp } from './matchers.js';
export { durationText, parseDuration } from './duration.js';
export { playbookJsonSchema, writePlaybookSchema } from './write-schema.js';

/** Whether any alert trigger of the playbook matches: its `source` (if set) and all its matchers. */
export function matchesAlert(playbook: { triggers: readonly Trigger[] }, alert: Pick<Alert, 'source' | 'labels'>): boolean {
  return playbook.triggers.some((t) => t.kind === 'alert' && (t.source === undefined || t.source === alert.source) && matchersHold(t.matchers, alert));
}

/** The cron triggers of a playbook, for the scheduler. */
export function scheduleTriggers(playbook: { triggers: readonly Trigger[] }): ScheduleTrigger[] {
  return playbook.triggers.filter((t): t is ScheduleTrigger => t.kind === 'schedule');
}
