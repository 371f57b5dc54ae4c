/**
 * Datadog webhooks integration: the payload is a JSON template pasted into
 * Datadog's Webhooks tile, with Datadog's `$VARIABLES` filled in on each
 * notification (https://docs.datadoghq.com/integrations/webhooks/). The
 * template Firebreak expects is DATADOG_TEMPLATE below (docs/webhooks.md).
 *
 * - identity: a monitor (`$ALERT_ID`) and the group it alerts for
 *   (`$ALERT_SCOPE`, e.g. `host:web-1,env:prod`) make the fingerprint;
 * - status: `$ALERT_TRANSITION` "Recovered" is resolved; Triggered, Warn,
 *   No Data and their Re- / Renotify repeats are firing;
 * - episode: Datadog has no "alert started at" variable, so a notification
 *   joins the open episode of its fingerprint; with none open it starts one
 *   at `$DATE`. A re-notification never starts a second run, a Recovered
 *   closes the episode, and a redelivered notification (same `$DATE`) lands
 *   on its own episode again.
 * - labels: `$TAGS` and `$ALERT_SCOPE` (`key:value`; key characters other
 *   than letters, digits and _ become _), plus monitor_id, alertname (the
 *   monitor title without Datadog's "[Triggered on ...]" prefixes),
 *   priority, hostname, severity, and any extra `labels` in the template.
 */
import { z } from 'zod';
import type { Alert } from '../types.js';
import { stringMap } from '../validate.js';
import { fingerprintOf } from './common.js';

/** What to paste into the Datadog Webhooks tile's Payload field (kept in sync with docs/webhooks.md by a test). */
export const DATADOG_TEMPLATE = `{
  "id": "$ID",
  "date": "$DATE",
  "last_updated": "$LAST_UPDATED",
  "event_type": "$EVENT_TYPE",
  "title": "$EVENT_TITLE",
  "message": "$TEXT_ONLY_MSG",
  "link": "$LINK",
  "tags": "$TAGS",
  "hostname": "$HOSTNAME",
  "priority": "$PRIORITY",
  "aggreg_key": "$AGGREG_KEY",
  "alert_id": "$ALERT_ID",
  "alert_title": "$ALERT_TITLE",
  "alert_transition": "$ALERT_TRANSITION",
  "alert_type": "$ALERT_TYPE",
  "alert_status": "$ALERT_STATUS",
  "alert_priority": "$ALERT_PRIORITY",
  "alert_metric": "$ALERT_METRIC",
  "alert_query": "$ALERT_QUERY",
  "alert_scope": "$ALERT_SCOPE",
  "alert_cycle_key": "$ALERT_CYCLE_KEY",
  "org": { "id": "$ORG_ID", "name": "$ORG_NAME" }
}`;

export const DATADOG_TRANSITIONS = ['Triggered', 'Re-Triggered', 'Warn', 'Re-Warn', 'No Data', 'Re-No Data', 'Renotify', 'Recovered'] as const;

/** Datadog fills an unknown variable with ""; optional fields accept that and mean "absent". */
const text = (max = 10_000) => z.string().max(max).optional();

export const datadogPayload = z.looseObject({
  alert_id: z
    .union([z.string(), z.number().int()])
    .transform((v) => String(v).trim())
    .pipe(z.string().regex(/^\d{1,20}$/, 'must be the monitor id ($ALERT_ID), e.g. "1234"')),
  alert_transition: z
    .string()
    .transform((v) => v.trim())
    .pipe(
      z.string().refine((v) => DATADOG_TRANSITIONS.some((t) => t.toLowerCase() === v.toLowerCase()), {
        message: `must be one of ${DATADOG_TRANSITIONS.join(', ')} ($ALERT_TRANSITION)`,
      }),
    ),
  date: z
    .union([z.string(), z.number()])
    .transform((v) => String(v).trim())
    .pipe(z.string().regex(/^\d{10,13}$/, 'must be the epoch time Datadog sends in $DATE (milliseconds, e.g. "1406662672000")')),
  id: text(200),
  last_updated: text(40),
  event_type: text(200),
  title: text(),
  message: text(100_000),
  body: text(100_000),
  link: text(4_000),
  tags: text(),
  hostname: text(1_000),
  priority: text(100),
  aggreg_key: text(200),
  alert_title: text(),
  alert_type: text(100),
  alert_status: text(),
  alert_priority: text(100),
  alert_metric: text(1_000),
  alert_query: text(),
  alert_scope: text(),
  alert_cycle_key: text(200),
  org: z.looseObject({ id: z.union([z.string(), z.number()]).optional(), name: z.string().optional() }).optional(),
  labels: stringMap.optional(),
});

export type DatadogPayload = z.infer<typeof datadogPayload>;

/** `$DATE` is epoch milliseconds (seconds accepted too). */
function epochToIso(value: string): string {
  const n = Number(value);
  return new Date(value.length <= 10 ? n * 1000 : n).toISOString();
}

function labelName(key: string): string {
  const clean = key.trim().replace(/[^a-zA-Z0-9_]/g, '_');
  return /^[a-zA-Z_]/.test(clean) ? clean : `_${clean}`;
}

/** `key:value` pairs of a comma list (Datadog tags and scopes); bare tags are skipped. */
export function parseTags(list: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const tag of (list ?? '').split(',')) {
    const t = tag.trim();
    const colon = t.indexOf(':');
    if (colon <= 0 || colon === t.length - 1) continue;
    out[labelName(t.slice(0, colon))] = t.slice(colon + 1).trim();
  }
  return out;
}

/** The sorted, normalised scope: `env:prod,host:web-1` however Datadog spaced or ordered it. */
function canonicalScope(scope: string | undefined): string {
  return (scope ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .sort()
    .join(',');
}

/** "[Triggered on {host:web-1}] [P1] Disk full" -> "Disk full". */
export function monitorName(title: string | undefined): string {
  return (title ?? '').replace(/^(\s*\[[^\]]*\])+\s*/, '').trim();
}

function severityOf(payload: DatadogPayload, tags: Record<string, string>, resolved: boolean): string {
  if (payload.labels?.severity) return payload.labels.severity;
  if (tags.severity) return tags.severity;
  if (resolved) return ''; // a recovery ("success") keeps the episode's severity
  const type = (payload.alert_type ?? '').toLowerCase();
  const transition = payload.alert_transition.toLowerCase();
  if (type === 'error' || transition.endsWith('triggered')) return 'critical';
  if (type === 'warning' || transition.endsWith('warn') || transition.endsWith('no data')) return 'warning';
  if (type === 'info') return 'info';
  return '';
}

function compact(record: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1].trim() !== ''));
}

export function normaliseDatadog(payload: DatadogPayload): Array<Alert & { startsAtKnown: boolean }> {
  const resolved = payload.alert_transition.toLowerCase() === 'recovered';
  const scope = canonicalScope(payload.alert_scope);
  const tags = { ...parseTags(payload.tags), ...parseTags(payload.alert_scope) };
  const severity = severityOf(payload, tags, resolved);
  const name = monitorName(payload.alert_title) || monitorName(payload.title);
  const labels = compact({
    ...tags,
    alertname: name,
    monitor_id: payload.alert_id,
    priority: payload.alert_priority,
    hostname: payload.hostname,
    scope,
    ...payload.labels,
    severity,
  });
  const annotations = compact({
    summary: payload.alert_status || payload.title,
    description: payload.message ?? payload.body,
    title: payload.title,
    alert_transition: payload.alert_transition,
    alert_query: payload.alert_query,
    alert_metric: payload.alert_metric,
    alert_cycle_key: payload.alert_cycle_key,
    event_id: payload.id,
  });
  const at = epochToIso(payload.date);
  return [
    {
      source: 'datadog',
      fingerprint: fingerprintOf({ monitor_id: payload.alert_id, scope }),
      status: resolved ? 'resolved' : 'firing',
      labels,
      annotations,
      startsAt: at,
      startsAtKnown: false,
      endsAt: resolved ? at : null,
      summary: name || payload.title || payload.alert_status || `Datadog monitor ${payload.alert_id}`,
      severity,
      generatorURL: payload.link ?? '',
      raw: payload,
    },
  ];
}
