/** Times and durations the way reviewers read them (UTC, short units), shared by every view. */

/** "350 ms", "2.4s", "42s", "3m 05s", "2h 07m", "3d 4h". */
export function formatDuration(value: number | null): string {
  if (value === null || !Number.isFinite(value)) return '—';
  const sign = value < 0 ? '-' : '';
  const abs = Math.abs(value);
  if (abs < 1_000) return `${sign}${Math.round(abs)} ms`;
  if (abs < 10_000) return `${sign}${(Math.floor(abs / 100) / 10).toFixed(1)}s`;
  const s = Math.floor(abs / 1_000);
  if (s < 60) return `${sign}${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${sign}${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${sign}${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${sign}${Math.floor(h / 24)}d ${h % 24}h`;
}

/**
 * Offset from the origin as a relative hint, precise enough to order events a
 * few milliseconds apart: "T+350 ms", "T+42.78s", "T+3m 05.2s", "T+2h 03m 05s", "T-1.20s".
 */
export function formatOffset(offsetMs: number): string {
  const sign = offsetMs < 0 ? '-' : '+';
  const abs = Math.abs(Math.round(offsetMs));
  let text: string;
  if (abs < 1_000) text = `${abs} ms`;
  else if (abs < 60_000) text = `${(Math.floor(abs / 10) / 100).toFixed(2)}s`;
  else if (abs < 3_600_000) text = `${Math.floor(abs / 60_000)}m ${(Math.floor((abs % 60_000) / 100) / 10).toFixed(1).padStart(4, '0')}s`;
  else text = `${Math.floor(abs / 3_600_000)}h ${String(Math.floor((abs % 3_600_000) / 60_000)).padStart(2, '0')}m ${String(Math.floor((abs % 60_000) / 1_000)).padStart(2, '0')}s`;
  return `T${sign}${text}`;
}

/** "2025-03-01 14:05:09 UTC" (seconds; the event table adds milliseconds). */
export function formatUtc(iso: string | null | undefined, options: { millis?: boolean; date?: boolean } = {}): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const full = d.toISOString(); // 2025-03-01T14:05:09.123Z
  const time = options.millis ? full.slice(11, 23) : full.slice(11, 19);
  return options.date === false ? time : `${full.slice(0, 10)} ${time}`;
}
