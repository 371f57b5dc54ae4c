import { z } from 'zod';
import { parseDuration as parsePlaybookDuration } from '../playbooks/index.js';

/**
 * "30s", "5m", "1h30m", "250ms" (the playbook notation) or a number of milliseconds -> milliseconds.
 * Throws on anything else (a bare "30" is ambiguous, so it is refused).
 */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new Error(`invalid duration ${value}: must be a non-negative number of ms`);
    return Math.round(value);
  }
  const ms = parsePlaybookDuration(value.trim());
  if (ms === undefined) throw new Error(`invalid duration "${value}": use e.g. 500ms, 30s, 5m, 1h30m`);
  return ms;
}

/** zod schema: a duration as in playbooks, parsed to milliseconds. */
export const durationSchema = z.union([z.number(), z.string()]).transform((value, ctx) => {
  try {
    return parseDuration(value);
  } catch (err) {
    ctx.issues.push({ code: 'custom', message: (err as Error).message, input: value });
    return z.NEVER;
  }
});

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}
