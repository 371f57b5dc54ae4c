import { createHash, timingSafeEqual } from 'node:crypto';

/** ISO UTC with millisecond precision: what Postgres timestamptz keeps and gives back. */
export function toUtc(timestamp: string): string {
  return new Date(timestamp).toISOString();
}

/** Alertmanager-style fingerprint when a source gives none: stable hash of the sorted label set. */
export function fingerprintOf(labels: Record<string, string>): string {
  const canonical = Object.keys(labels)
    .sort()
    .map((k) => `${k}\u0000${labels[k]}`)
    .join('\u0001');
  return createHash('sha256').update(canonical).digest('hex').slice(0, 16);
}

export function alertSummary(labels: Record<string, string>, annotations: Record<string, string>): string {
  return annotations.summary ?? annotations.description ?? annotations.message ?? labels.alertname ?? '';
}

/**
 * Constant-time comparison of a presented hex digest with the expected one
 * (webhook signatures). The expected length is public (a SHA-256 is 64 hex
 * digits), so a length mismatch may return early.
 */
export function hexDigestEqual(presented: string, expectedHex: string): boolean {
  if (presented.length !== expectedHex.length || !/^[0-9a-f]+$/i.test(presented)) return false;
  return timingSafeEqual(Buffer.from(presented.toLowerCase(), 'hex'), Buffer.from(expectedHex.toLowerCase(), 'hex'));
}

/** Alertmanager writes the zero time for "no end known"; Grafana does too. */
const ZERO_TIME = /^0001-01-01T00:00:00/;

/** The alert shape Alertmanager and Grafana share (Grafana's unified alerting is Alertmanager inside). */
interface PrometheusStyleAlert {
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string | undefined;
  generatorURL: string;
  fingerprint?: string | undefined;
}

export function fromPrometheusStyleAlert<S extends 'alertmanager' | 'grafana'>(source: S, a: PrometheusStyleAlert, generatorURL = a.generatorURL) {
  return {
    source,
    fingerprint: a.fingerprint ?? fingerprintOf(a.labels),
    status: a.status,
    labels: a.labels,
    annotations: a.annotations,
    startsAt: toUtc(a.startsAt),
    endsAt: a.endsAt && !ZERO_TIME.test(a.endsAt) ? toUtc(a.endsAt) : null,
    summary: alertSummary(a.labels, a.annotations),
    severity: a.labels.severity ?? '',
    generatorURL,
    raw: a,
  };
}
