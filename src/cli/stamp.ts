/**
 * `firebreak fire` moves a sample alert to the present: a 2024 `startsAt`
 * would make every duration read "931d" and every timeline row "T+22355h".
 * All times in the payload move by the same amount, so the latest start lands
 * on now and the gaps between alerts (and to their ends) are kept.
 */

/** Keys whose value is a point in time, in the payloads the webhooks accept. */
const START_KEYS = new Set(['startsAt', 'created_at', 'occurred_at', 'date']);
const OTHER_TIME_KEYS = new Set(['endsAt', 'last_updated', 'updated_at', 'resolved_at']);

/** Alertmanager and Grafana write the zero time for "no end known": it stays as it is. */
const ZERO_TIME = /^0001-01-01T/;
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/i;
const EPOCH = /^\d{10}$|^\d{13}$/;

interface Found {
  holder: Record<string, unknown>;
  key: string;
  ms: number;
  /** How the value was written: ISO text, or epoch seconds / milliseconds (Datadog's `$DATE`), as text or number. */
  format: 'iso' | 'epoch-s' | 'epoch-ms';
  numeric: boolean;
}

function parseTime(value: unknown): Pick<Found, 'ms' | 'format' | 'numeric'> | undefined {
  if (typeof value === 'string' && ISO_TIME.test(value) && !ZERO_TIME.test(value)) {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : { ms, format: 'iso', numeric: false };
  }
  const text = typeof value === 'number' && Number.isInteger(value) ? String(value) : typeof value === 'string' ? value : '';
  if (!EPOCH.test(text)) return undefined;
  const seconds = text.length === 10;
  return { ms: seconds ? Number(text) * 1000 : Number(text), format: seconds ? 'epoch-s' : 'epoch-ms', numeric: typeof value === 'number' };
}

function collect(value: unknown, out: Found[]): void {
  if (Array.isArray(value)) {
    for (const item of value) collect(item, out);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  const holder = value as Record<string, unknown>;
  for (const [key, v] of Object.entries(holder)) {
    if (START_KEYS.has(key) || OTHER_TIME_KEYS.has(key)) {
      const parsed = parseTime(v);
      if (parsed) out.push({ holder, key, ...parsed });
    } else collect(v, out);
  }
}

function render(found: Found, ms: number): unknown {
  if (found.format === 'iso') return new Date(ms).toISOString();
  const text = found.format === 'epoch-s' ? String(Math.floor(ms / 1000)) : String(ms);
  return found.numeric ? Number(text) : text;
}

/**
 * A copy of `payload` whose times are moved so that its latest start time is
 * `now`. Returns how far they moved (0 when the payload carries no start time).
 */
export function stampWithNow<T>(payload: T, now: number): { payload: T; shiftedMs: number } {
  const copy = structuredClone(payload);
  const found: Found[] = [];
  collect(copy, found);
  const starts = found.filter((f) => START_KEYS.has(f.key));
  if (starts.length === 0) return { payload: copy, shiftedMs: 0 };
  const shiftedMs = now - Math.max(...starts.map((f) => f.ms));
  for (const f of found) f.holder[f.key] = render(f, f.ms + shiftedMs);
  return { payload: copy, shiftedMs };
}
