import { z } from 'zod';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^(\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;

/**
 * "30s", "5m", "1h30m", "250ms" or a number of milliseconds -> milliseconds.
 * Throws on anything else (a bare "30" is ambiguous, so it is refused).
 */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new Error(`invalid duration ${value}: must be a non-negative number of ms`);
    return Math.round(value);
  }
  const text = value.trim();
  if (!DURATION.test(text)) throw new Error(`invalid duration "${value}": use e.g. 500ms, 30s, 5m, 1h30m`);
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(amount) * UNIT_MS[unit!]!;
  return Math.round(total);
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
