/**
 * Grafana unified alerting webhook contact point (payload version "1"):
 * https://grafana.com/docs/grafana/latest/alerting/configure-notifications/manage-contact-points/integrations/webhook-notifier/
 *
 * The body is Alertmanager's webhook payload plus Grafana's own fields
 * (orgId, title, state, message; per alert silenceURL, dashboardURL, panelURL,
 * values, valueString). Grafana computes each alert's `fingerprint` from its
 * labels and keeps `startsAt` across the firing and the resolved
 * notification, so an episode is (fingerprint, startsAt) exactly as for
 * Alertmanager.
 */
import { createHmac } from 'node:crypto';
import { z } from 'zod';
import type { Alert } from '../types.js';
import { rfc3339, stringMap } from '../validate.js';
import { fromPrometheusStyleAlert, hexDigestEqual } from './common.js';

export const GRAFANA_SIGNATURE_HEADER = 'x-grafana-alerting-signature';
/** Sent only when the contact point's HMAC config names a timestamp header; this is the conventional name. */
export const GRAFANA_TIMESTAMP_HEADER = 'x-grafana-alerting-timestamp';
/** A signed timestamp older (or newer) than this is a replay. */
export const GRAFANA_MAX_SKEW_SECONDS = 300;

// Loose objects: unknown fields Grafana adds in later versions pass through and are kept in `raw`.
const grafanaAlert = z.looseObject({
  status: z.enum(['firing', 'resolved']),
  labels: stringMap.refine((l) => Object.keys(l).length > 0, 'must have at least one label'),
  annotations: stringMap.default({}),
  startsAt: rfc3339,
  endsAt: z.union([rfc3339, z.literal('')]).optional(),
  generatorURL: z.string().max(4_000).default(''),
  fingerprint: z.string().regex(/^[0-9a-zA-Z]{1,64}$/, 'must be the alert fingerprint (hex)').optional(),
  silenceURL: z.string().optional(),
  dashboardURL: z.string().optional(),
  panelURL: z.string().optional(),
  values: z.record(z.string(), z.number().nullable()).nullable().optional(),
  valueString: z.string().optional(),
});

export const grafanaPayload = z.looseObject({
  receiver: z.string(),
  status: z.enum(['firing', 'resolved']),
  orgId: z.number().int().optional(),
  alerts: z.array(grafanaAlert).min(1, 'must hold at least one alert').max(1000, 'at most 1000 alerts per notification'),
  groupLabels: stringMap.default({}),
  commonLabels: stringMap.default({}),
  commonAnnotations: stringMap.default({}),
  externalURL: z.string().default(''),
  version: z.literal('1', { message: 'must be "1" (Grafana webhook payload version)' }),
  groupKey: z.string(),
  truncatedAlerts: z.number().int().min(0).optional(),
  title: z.string().optional(),
  state: z.string().optional(),
  message: z.string().optional(),
});

export type GrafanaPayload = z.infer<typeof grafanaPayload>;

export function normaliseGrafana(payload: GrafanaPayload): Alert[] {
  // Grafana's rule link; the panel or dashboard is the next best thing for a person.
  return payload.alerts.map((a) => fromPrometheusStyleAlert('grafana', a, a.generatorURL || a.panelURL || a.dashboardURL || ''));
}

/** Grafana's HMAC: hex HMAC-SHA256 of the body, or of `<timestamp>:<body>` when a timestamp header is configured. */
export function grafanaSignature(secret: string, body: Buffer | string, timestamp?: string): string {
  const mac = createHmac('sha256', secret);
  if (timestamp !== undefined) mac.update(`${timestamp}:`);
  return mac.update(body).digest('hex');
}

/**
 * Check `X-Grafana-Alerting-Signature` against the raw body. Returns a
 * problem to answer 401 with, or undefined when the request is authentic.
 */
export function verifyGrafanaSignature(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  raw: Buffer,
  nowMs: number = Date.now(),
): string | undefined {
  const presented = single(headers[GRAFANA_SIGNATURE_HEADER]);
  if (!presented) return 'missing X-Grafana-Alerting-Signature header (FIREBREAK_GRAFANA_SECRET is set)';
  const timestamp = single(headers[GRAFANA_TIMESTAMP_HEADER]);
  if (timestamp !== undefined) {
    if (!/^\d{1,12}$/.test(timestamp)) return 'X-Grafana-Alerting-Timestamp must be a Unix timestamp in seconds';
    if (Math.abs(nowMs / 1000 - Number(timestamp)) > GRAFANA_MAX_SKEW_SECONDS) return 'X-Grafana-Alerting-Timestamp is too old or in the future (replay?)';
  }
  const expected = grafanaSignature(secret, raw, timestamp);
  return hexDigestEqual(presented.trim(), expected) ? undefined : 'invalid X-Grafana-Alerting-Signature';
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
