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

/** NUL and lone surrogates as JSON.stringify writes them: jsonb refuses both. */
const UNSAFE_ESCAPE = /\\u(?:0000|d[89a-f][0-9a-f]{2})/i;

/**
 * The same redaction, straight to JSON text (what a statement parameter needs),
 * for plain JSON values (parsed payloads): when the serialised value holds no
 * form of a secret, nothing jsonb refuses and no nesting deep enough to be cut,
 * the text is used as is, without walking and copying the value first (the hot
 * path of ingest: payloads rarely hold any of these); otherwise the redactor
 * walks it. Either way the text equals JSON.stringify(redact(value)).
 */
export function createJsonRedactor(secretValues: readonly string[]): (value: unknown) => string {
  const redact = createRedactor(secretValues);
  // Each form of each secret as it appears inside JSON text: a substring (4+ characters), or a whole string.
  const needles = new Set<string>();
  for (const secret of secretValues) {
    if (secret.length === 0) continue;
    for (const form of secretForms(secret)) needles.add(form.length >= 4 ? JSON.stringify(form).slice(1, -1) : JSON.stringify(form));
  }
  const list = [...needles];
  // Nesting can be no deeper than the number of openers: few openers, no cut.
  const shallow = (text: string) => {
    let openers = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if ((c === 0x5b || c === 0x7b) && ++openers >= MAX_REDACT_DEPTH) return false;
    }
    return true;
  };
  return (value) => {
    let text: string | undefined;
    try {
      text = JSON.stringify(value ?? null);
    } catch {
      text = undefined; // a BigInt, a cycle, or nesting too deep for the engine: the redactor copes
    }
    if (text !== undefined && !UNSAFE_ESCAPE.test(text) && shallow(text) && !list.some((n) => text!.includes(n))) return text;
    return JSON.stringify(redact(value) ?? null);
  };
}
