export const REDACTED = '[redacted]';

/**
 * Returns a deep copy with every secret value replaced, and strings made safe
 * for jsonb (no NUL, no lone surrogates) so an odd payload can't fail a write.
 */
export function createRedactor(secretValues: readonly string[]): (value: unknown) => unknown {
  // Very short secrets would redact innocent text; they are still redacted, but only as whole strings.
  const substrings = secretValues.filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  const exact = new Set(secretValues.filter((s) => s.length > 0));
  const cleanString = (s: string): string => {
    if (exact.has(s)) return REDACTED;
    let out = s;
    for (const secret of substrings) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    // eslint-disable-next-line no-control-regex
    return out.includes('\u0000') ? out.toWellFormed().replace(/\u0000/g, '\uFFFD') : out.toWellFormed();
  };
  const walk = (value: unknown): unknown => {
    if (typeof value === 'string') return cleanString(value);
    if (Array.isArray(value)) return value.map(walk);
    if (value && typeof value === 'object') {
      if (value instanceof Date) return value.toISOString();
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (v === undefined || typeof v === 'function') continue;
        out[cleanString(k)] = walk(v);
      }
      return out;
    }
    if (typeof value === 'number' && !Number.isFinite(value)) return null;
    if (typeof value === 'bigint') return value.toString();
    return value;
  };
  return walk;
}
