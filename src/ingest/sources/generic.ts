/**
 * The documented generic JSON alert (README "Generic webhook"): one alert
 * object, or `{ "alerts": [ ... ] }`.
 */
import { z } from 'zod';
import type { Alert } from '../types.js';
import { rfc3339, stringMap } from '../validate.js';
import { alertSummary, fingerprintOf, toUtc } from './common.js';

const genericAlert = z.strictObject({
  fingerprint: z.string().min(1).max(200).optional(),
  status: z.enum(['firing', 'resolved']).default('firing'),
  labels: stringMap.refine((l) => Object.keys(l).length > 0, 'must have at least one label'),
  annotations: stringMap.default({}),
  summary: z.string().max(10_000).optional(),
  severity: z.string().max(100).optional(),
  startsAt: rfc3339.optional(),
  endsAt: rfc3339.optional(),
  generatorURL: z.string().max(4_000).default(''),
});

const alertList = z.strictObject({ alerts: z.array(genericAlert).min(1, 'must hold at least one alert').max(1000) });

/**
 * `{ "alerts": [...] }` or one alert. Chosen by the presence of `alerts`
 * rather than a zod union, so errors name the field instead of "no union member matched".
 */
export const genericPayload = z.custom<unknown>().pipe(
  z.any().transform((body, ctx) => {
    const schema = body && typeof body === 'object' && !Array.isArray(body) && 'alerts' in body ? alertList : genericAlert;
    const parsed = schema.safeParse(body);
    if (parsed.success) return parsed.data as z.infer<typeof alertList> | z.infer<typeof genericAlert>;
    for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, code: 'custom', message: issue.message, path: issue.path } as never);
    return z.NEVER;
  }),
);

export type GenericPayload = z.infer<typeof alertList> | z.infer<typeof genericAlert>;
type GenericAlert = z.infer<typeof genericAlert>;

/**
 * A generic alert with no startsAt joins the open episode of its fingerprint
 * (resolved in the store); `startsAt` is then null here.
 */
export function normaliseGeneric(payload: GenericPayload, now: Date): Array<Alert & { startsAtKnown: boolean }> {
  const alerts: GenericAlert[] = 'alerts' in payload ? payload.alerts : [payload];
  return alerts.map((a) => {
    const severity = a.severity ?? a.labels.severity ?? '';
    return {
      source: 'generic',
      fingerprint: a.fingerprint ?? fingerprintOf(a.labels),
      status: a.status,
      labels: a.labels,
      annotations: a.annotations,
      startsAt: a.startsAt ? toUtc(a.startsAt) : now.toISOString(),
      startsAtKnown: a.startsAt !== undefined,
      endsAt: a.endsAt ? toUtc(a.endsAt) : null,
      summary: a.summary ?? alertSummary(a.labels, a.annotations),
      severity,
      generatorURL: a.generatorURL,
      raw: a,
    };
  });
}
