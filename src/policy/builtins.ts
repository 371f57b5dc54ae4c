/**
 * Built-in functions the wasm runtime lacks. A policy compiled with
 * `opa build -t wasm` calls back into JavaScript for every built-in that OPA
 * does not implement natively in wasm; @open-policy-agent/opa-wasm ships a
 * few, and we add the ones our policies need, matching OPA's own semantics so
 * that `opa test` (Go) and the bot (wasm) decide alike.
 */

/** Built-ins @open-policy-agent/opa-wasm 1.10 implements in JavaScript (src/builtins/). */
const SDK_BUILTINS = ['sprintf', 'json.is_valid', 'regex.split', 'yaml.is_valid', 'yaml.marshal', 'yaml.unmarshal'];

// Go's RFC 3339 layout; like Go, accept ',' before fractional seconds and any number of digits.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:Z|([+-])(\d{2}):(\d{2}))$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * OPA's `time.parse_rfc3339_ns`: Go's `time.Parse(time.RFC3339, s)` as Unix
 * nanoseconds. Returns undefined where OPA's built-in errors (OPA then makes
 * the expression undefined), so rules behave the same in both runtimes.
 * The number goes back to wasm as JSON text so all 19 digits survive
 * (a JS number would round nanoseconds off).
 */
export function parseRfc3339Ns(value: unknown): bigint | undefined {
  if (typeof value !== 'string') return undefined;
  const m = RFC3339.exec(value);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // setUTCFullYear, unlike Date.UTC, keeps years 0-99 as written
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return undefined; // Feb 30 and friends
  date.setUTCHours(hour, minute, second, 0);
  let offsetSeconds = 0;
  if (m[8] !== undefined) {
    const oh = Number(m[9]);
    const om = Number(m[10]);
    if (oh > 23 || om > 59) return undefined;
    offsetSeconds = (m[8] === '-' ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const fraction = BigInt((m[7] ?? '').slice(0, 9).padEnd(9, '0')); // Go keeps 9 digits, drops the rest
  const ns = (BigInt(date.getTime()) - BigInt(offsetSeconds) * 1000n) * 1_000_000n + fraction;
  return ns < INT64_MIN || ns > INT64_MAX ? undefined : ns;
}

/** The `customBuiltins` argument of opa-wasm's `loadPolicy`. */
export const customBuiltins: Record<string, (...args: unknown[]) => unknown> = {
  'time.parse_rfc3339_ns': (value: unknown) => {
    const ns = parseRfc3339Ns(value);
    // An ArrayBuffer is taken by opa-wasm as JSON text: exact, unlike a JS number.
    return ns === undefined ? undefined : new TextEncoder().encode(ns.toString()).buffer;
  },
};

/** Every built-in a bundle may call back into JavaScript for. */
export const SUPPORTED_BUILTINS: ReadonlySet<string> = new Set([...SDK_BUILTINS, ...Object.keys(customBuiltins)]);
