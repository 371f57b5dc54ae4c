/**
 * PagerDuty v3 webhooks (webhook subscriptions):
 * https://developer.pagerduty.com/docs/webhooks/v3-overview/
 *
 * One event per delivery: `{ "event": { id, event_type, resource_type,
 * occurred_at, agent, client, data } }`. Incident lifecycle events carry the
 * incident in `event.data`; they become one Alert whose fingerprint is the
 * incident id. Other events (notes, responders, status updates, services,
 * `pagey.ping`) are accepted and stored but start nothing.
 *
 * Episodes: an incident's episode starts at its `created_at`, which every
 * event about the incident repeats, so `incident.resolved` closes the episode
 * `incident.triggered` opened. A reopened incident fires again from the
 * reopen time (a new episode, like an Alertmanager alert that fires again);
 * later events about it, its resolve included, join whichever episode of the
 * incident is open.
 *
 * Signatures: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`, each an
 * HMAC-SHA256 of the raw body with one of the subscription's secrets (more
 * than one during secret rotation); one match is enough.
 */
import { createHmac } from 'node:crypto';
import { z } from 'zod';
import type { Alert } from '../types.js';
import { rfc3339 } from '../validate.js';
import { hexDigestEqual, toUtc } from './common.js';

export const PAGERDUTY_SIGNATURE_HEADER = 'x-pagerduty-signature';
export const PAGERDUTY_DELIVERY_HEADER = 'x-webhook-id';
/** PagerDuty drops a delivery not answered within 5 s; we answer 503 (retried) before that. */
export const PAGERDUTY_DEADLINE_MS = 4_000;

/** Events whose `data` is the incident itself (data.type "incident"). */
export const PAGERDUTY_INCIDENT_EVENTS = [
  'incident.triggered',
  'incident.acknowledged',
  'incident.unacknowledged',
  'incident.escalated',
  'incident.reassigned',
  'incident.delegated',
  'incident.priority_updated',
  'incident.reopened',
  'incident.resolved',
] as const;

const reference = z.looseObject({
  id: z.string().min(1),
  type: z.string().optional(),
  summary: z.string().optional(),
  self: z.string().nullable().optional(),
  html_url: z.string().nullable().optional(),
});

const incident = z.looseObject({
  id: z.string().min(1, 'must be the incident id').max(100),
  type: z.literal('incident', { message: 'must be "incident"' }),
  self: z.string().optional(),
  html_url: z.string().max(4_000).optional(),
  number: z.number().int().optional(),
  status: z.enum(['triggered', 'acknowledged', 'resolved']),
  incident_key: z.string().max(1_000).nullable().optional(),
  created_at: rfc3339,
  title: z.string().max(10_000),
  service: reference.nullable().optional(),
  assignees: z.array(reference).optional(),
  escalation_policy: reference.nullable().optional(),
  teams: z.array(reference).optional(),
  priority: reference.nullable().optional(),
  urgency: z.enum(['high', 'low']).optional(),
  resolve_reason: z.unknown().optional(),
});

type Incident = z.infer<typeof incident>;

const event = z
  .looseObject({
    id: z.string().min(1).max(200),
    event_type: z.string().regex(/^[a-z_]+(\.[a-z_]+)+$/, 'must be a PagerDuty event type such as incident.triggered'),
    resource_type: z.string().min(1),
    occurred_at: rfc3339,
    agent: z.unknown().optional(),
    client: z.unknown().optional(),
    data: z.looseObject({ type: z.string({ message: 'must name the object type' }) }),
  })
  .superRefine((e, ctx) => {
    if (!(PAGERDUTY_INCIDENT_EVENTS as readonly string[]).includes(e.event_type)) return;
    const parsed = incident.safeParse(e.data);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', path: ['data', ...issue.path], message: issue.message });
    }
  });

export const pagerdutyPayload = z.looseObject({ event });

export type PagerDutyPayload = z.infer<typeof pagerdutyPayload>;

/** `urgency` is what a PagerDuty incident has instead of a severity. */
function severityOf(urgency: string | undefined): string {
  if (urgency === 'high') return 'critical';
  if (urgency === 'low') return 'warning';
  return '';
}

function compact(record: Record<string, string | undefined | null>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== ''));
}

/**
 * The alert an incident event describes, or none for events that are not
 * about an incident's state. `startsAtKnown: false` = join the open episode
 * of the incident when there is one.
 */
export function normalisePagerDuty(payload: PagerDutyPayload): Array<Alert & { startsAtKnown: boolean }> {
  const e = payload.event;
  if (!(PAGERDUTY_INCIDENT_EVENTS as readonly string[]).includes(e.event_type)) return [];
  const inc = e.data as unknown as Incident;
  const resolved = e.event_type === 'incident.resolved' || (inc.status === 'resolved' && e.event_type !== 'incident.reopened');
  const severity = severityOf(inc.urgency);
  const labels = compact({
    alertname: inc.title,
    service: inc.service?.summary,
    service_id: inc.service?.id,
    urgency: inc.urgency,
    severity,
    priority: inc.priority?.summary,
    escalation_policy: inc.escalation_policy?.summary,
    team: inc.teams?.[0]?.summary,
    incident_id: inc.id,
    incident_number: inc.number === undefined ? undefined : String(inc.number),
    incident_key: inc.incident_key,
  });
  const annotations = compact({
    summary: inc.title,
    incident_url: inc.html_url,
    event_type: e.event_type,
    resolve_reason: typeof inc.resolve_reason === 'string' ? inc.resolve_reason : undefined,
  });
  const startsAt = e.event_type === 'incident.reopened' ? e.occurred_at : inc.created_at;
  return [
    {
      source: 'pagerduty',
      fingerprint: inc.id,
      status: resolved ? 'resolved' : 'firing',
      labels,
      annotations,
      startsAt: toUtc(startsAt),
      startsAtKnown: e.event_type === 'incident.triggered' || e.event_type === 'incident.reopened',
      endsAt: resolved ? toUtc(e.occurred_at) : null,
      summary: inc.title,
      severity,
      generatorURL: inc.html_url ?? '',
      raw: e,
    },
  ];
}

export function pagerdutySignature(secret: string, body: Buffer | string): string {
  return `v1=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * Check `X-PagerDuty-Signature` against the raw body. Returns a problem to
 * answer 401 with, or undefined when one of the signatures is ours.
 */
export function verifyPagerDutySignature(secret: string | undefined, header: string | string[] | undefined, raw: Buffer): string | undefined {
  if (!secret) return 'PagerDuty webhooks are not configured: set FIREBREAK_PAGERDUTY_SECRET to the subscription\'s signing secret';
  const value = Array.isArray(header) ? header.join(',') : header;
  if (!value) return 'missing X-PagerDuty-Signature header';
  const expected = createHmac('sha256', secret).update(raw).digest('hex');
  let matched = false;
  // Compare against every v1 signature (no early exit), each in constant time.
  for (const part of value.split(',')) {
    const m = /^\s*v1=([0-9a-fA-F]+)\s*$/.exec(part);
    if (m && hexDigestEqual(m[1]!, expected)) matched = true;
  }
  return matched ? undefined : 'invalid X-PagerDuty-Signature (no v1 signature matches FIREBREAK_PAGERDUTY_SECRET)';
}
