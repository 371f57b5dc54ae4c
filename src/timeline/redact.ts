export const REDACTED = '[redacted]';

/** Deeper than this, values are replaced rather than walked: no payload can exhaust the stack here. */
export const MAX_REDACT_DEPTH = 128;
const TOO_DEEP = '[nested too deep]';

/** Percent-encoding with lower-case hex digits (some clients and servers write %2f). */
function lowerHex(encoded: string): string {
  return encoded.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
}

/**
 * The forms a secret takes on its way through a request and the messages about
 * it: as is, percent-encoded (encodeURIComponent, encodeURI, HTML forms with
 * `+` for space; upper- and lower-case hex), inside a JSON string, escaped
 * for Slack mrkdwn or a PromQL string, and base64 (a Basic credential).
 */
export function secretForms(secret: string): string[] {
  const forms = new Set<string>([secret]);
  const add = (f: string) => forms.add(f);
  for (const encoded of [encodeURIComponent(secret), encodeURI(secret), new URLSearchParams({ s: secret }).toString().slice(2)]) {
    add(encoded);
    add(lowerHex(encoded));
  }
  add(JSON.stringify(secret).slice(1, -1));
  add(secret.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'));
  add(secret.replace(/\\/g, '\\\\').replace(/"/g, '\\"'));
  const bytes = Buffer.from(secret, 'utf8');
  add(bytes.toString('base64'));
  add(bytes.toString('base64').replace(/=+$/, ''));
  add(bytes.toString('base64url'));
  return [...forms];
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Returns a deep copy with every secret value (in any of its forms, see
 * secretForms) replaced, and strings made safe for jsonb (no NUL, no lone
 * surrogates) so an odd payload can't fail a write.
 */
export function createRedactor(secretValues: readonly string[], options: { alsoMask?: (text: string) => string } = {}): (value: unknown) => unknown {
  // Very short secrets would redact innocent text; they are still redacted, but only as whole strings.
  const exact = new Set<string>();
  const substrings = new Set<string>();
  for (const secret of secretValues) {
    if (secret.length === 0) continue;
    for (const form of secretForms(secret)) {
      exact.add(form);
      if (form.length >= 4) substrings.add(form);
    }
  }
  // One pass over each string for all forms of all secrets; longest first so a form wins over its own prefix.
  const pattern = substrings.size > 0 ? new RegExp([...substrings].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|'), 'g') : undefined;
  const cleanString = (s: string): string => {
    if (exact.has(s)) return REDACTED;
    let out = pattern ? s.replace(pattern, REDACTED) : s;
    if (options.alsoMask) out = options.alsoMask(out);
    // eslint-disable-next-line no-control-regex
    return out.includes('\u0000') ? out.toWellFormed().replace(/\u0000/g, '\uFFFD') : out.toWellFormed();
  };
  const walk = (value: unknown, depth: number): unknown => {
    if (typeof value === 'string') return cleanString(value);
    if (value && typeof value === 'object') {
      if (depth >= MAX_REDACT_DEPTH) return TOO_DEEP;
      if (Array.isArray(value)) return value.map((v) => walk(v, depth + 1));
      if (value instanceof Date) return value.toISOString();
      if (value instanceof Error) return walk({ name: value.name, message: value.message }, depth);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (v === undefined || typeof v === 'function') continue;
        out[cleanString(k)] = walk(v, depth + 1);
      }
      return out;
    }
    if (typeof value === 'number' && !Number.isFinite(value)) return null;
    if (typeof value === 'bigint') return value.toString();
    return value;
  };
  return (value) => walk(value, 0);
}
