export const ALERT_SOURCES = ['alertmanager', 'grafana', 'pagerduty', 'datadog', 'generic'] as const;
export type AlertSource = (typeof ALERT_SOURCES)[number];

/** Every source is normalised to this one shape. */
export interface Alert {
  source: AlertSource;
  fingerprint: string;
  status: 'firing' | 'resolved';
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** RFC 3339 UTC. */
  startsAt: string;
  /** RFC 3339 UTC, or null while firing with no known end. */
  endsAt: string | null;
  summary: string;
  severity: string;
  generatorURL: string;
  /** The source's own object for this alert, untouched. */
  raw: unknown;
}
