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

/** NUL and lone surrogates as JSON.stringify writes them: jsonb refuses both. */
const UNSAFE_ESCAPE = /\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

/**
 * The same redaction, straight to JSON text (what a statement parameter needs):
 * when the serialised value holds no secret and nothing jsonb refuses, the
 * text is used as is, without walking and copying the value first (the hot
 * path of ingest: payloads rarely hold either); otherwise the redactor walks it.
 */
export function createJsonRedactor(secretValues: readonly string[]): (value: unknown) => string {
  const redact = createRedactor(secretValues);
  // How each secret appears inside JSON text: as a substring (long ones), or as a whole string (short ones).
  const needles = secretValues.filter((s) => s.length > 0).map((s) => (s.length >= 4 ? JSON.stringify(s).slice(1, -1) : JSON.stringify(s)));
  return (value) => {
    let text: string | undefined;
    try {
      text = JSON.stringify(value ?? null);
    } catch {
      text = undefined; // a BigInt or a cycle: the redactor copes
    }
    if (text !== undefined && !UNSAFE_ESCAPE.test(text) && !needles.some((n) => text!.includes(n))) return text;
    return JSON.stringify(redact(value) ?? null);
  };
}
