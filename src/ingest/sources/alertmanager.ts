/**
 * Prometheus Alertmanager webhook, payload version "4":
 * https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
 */
import { z } from 'zod';
import type { Alert } from '../types.js';
import { rfc3339, stringMap } from '../validate.js';
import { fromPrometheusStyleAlert } from './common.js';


const amAlert = z.object({
  status: z.enum(['firing', 'resolved']),
  labels: stringMap.refine((l) => Object.keys(l).length > 0, 'must have at least one label'),
  annotations: stringMap,
  startsAt: rfc3339,
  endsAt: z.union([rfc3339, z.literal('')]).optional(),
  generatorURL: z.string(),
  fingerprint: z.string().regex(/^[0-9a-zA-Z]{1,64}$/, 'must be the alert fingerprint (hex)').optional(),
});

export const alertmanagerPayload = z.object({
  version: z.literal('4', { message: 'must be "4" (Alertmanager webhook payload version)' }),
  groupKey: z.string(),
  truncatedAlerts: z.number().int().min(0).optional(),
  status: z.enum(['firing', 'resolved']),
  receiver: z.string(),
  groupLabels: stringMap,
  commonLabels: stringMap,
  commonAnnotations: stringMap,
  externalURL: z.string(),
  alerts: z.array(amAlert).min(1, 'must hold at least one alert').max(1000, 'at most 1000 alerts per notification'),
});

export type AlertmanagerPayload = z.infer<typeof alertmanagerPayload>;

export function normaliseAlertmanager(payload: AlertmanagerPayload): Alert[] {
  return payload.alerts.map((a) => fromPrometheusStyleAlert('alertmanager', a));
}
