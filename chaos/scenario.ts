/**
 * What the chaos run feeds the bot: eight playbooks whose HTTP steps call the
 * counting target (retries, timeouts, a durable wait, a concurrency key, an
 * approval someone answers, compensation after a failure, a run the alert's
 * resolve aborts), and a seeded stream of alerts as Alertmanager (v4, grouped
 * by alertname) and the generic webhook send them, resolves included.
 */
import { between, pick, seededRandom } from './rng.js';

export interface ChaosAlert {
  source: 'alertmanager' | 'generic';
  fingerprint: string;
  startsAt: string;
  labels: Record<string, string>;
}

export interface Notification {
  id: number;
  path: '/hooks/alertmanager' | '/hooks/generic';
  body: unknown;
  alerts: ChaosAlert[];
  /** Id of the notification this one re-sends (Alertmanager's repeat_interval / group change). */
  repeatOf?: number;
  /** It resolves its alerts (their runs follow on_resolved). */
  resolves?: boolean;
}

/** Playbook YAML files (name -> content) whose steps call the target at `t`. */
export function chaosPlaybooks(t: string): Record<string, string> {
  return {
    'chaos-rollback.yaml': `
name: chaos-rollback
description: Alertmanager error-rate alert; a flaky mitigation with retries
triggers:
  - source: alertmanager
    matchers: ['alertname="ChaosErrorRate"']
steps:
  - { id: context, action: http.request, with: { method: POST, url: "${t}/chaos-rollback/context/ok", body: { service: "\${{ alert.labels.service }}" } } }
  - id: mitigate
    action: http.request
    with: { method: POST, url: "${t}/chaos-rollback/mitigate/flaky" }
    retry: { attempts: 3, backoff: 200ms, max_backoff: 1s }
  - { id: record, action: note, with: { text: "mitigated \${{ alert.labels.service }}" } }
  - { id: verify, action: http.request, with: { method: POST, url: "${t}/chaos-rollback/verify/ok" } }
`,
    'chaos-restart.yaml': `
name: chaos-restart
description: Alertmanager crash-loop alert; a slow restart, a durable wait, a flaky check; two per service at once
triggers:
  - source: alertmanager
    matchers: ['alertname="ChaosPodCrash"']
concurrency:
  key: \${{ alert.labels.service }}
  limit: 2
steps:
  - { id: restart, action: http.request, with: { method: POST, url: "${t}/chaos-restart/restart/slow" }, timeout: 10s }
  - { id: pause, action: wait, with: { duration: 500ms } }
  - id: check
    action: http.request
    with: { method: POST, url: "${t}/chaos-restart/check/flaky" }
    retry: { attempts: 3, backoff: 200ms, max_backoff: 1s }
`,
    'chaos-disk.yaml': `
name: chaos-disk
description: generic disk alert; a flaky cleanup with retries, then a notification
triggers:
  - source: generic
    matchers: ['alertname="ChaosDiskFull"']
steps:
  - id: cleanup
    action: http.request
    with: { method: POST, url: "${t}/chaos-disk/cleanup/flaky" }
    retry: { attempts: 3, backoff: 200ms, max_backoff: 1s }
  - { id: notify, action: http.request, with: { method: POST, url: "${t}/chaos-disk/notify/ok" } }
`,
    'chaos-queue.yaml': `
name: chaos-queue
description: generic queue alert; a drain that sometimes outlives its timeout and is retried
triggers:
  - source: generic
    matchers: ['alertname="ChaosQueueBacklog"']
steps:
  - { id: look, action: note, with: { text: "queue \${{ alert.labels.service }}" } }
  - id: drain
    action: http.request
    with: { method: POST, url: "${t}/chaos-queue/drain/hang" }
    timeout: 1s
    retry: { attempts: 3, backoff: 200ms, max_backoff: 1s }
  - { id: report, action: http.request, with: { method: POST, url: "${t}/chaos-queue/report/slow" } }
`,
    'chaos-approve.yaml': `
name: chaos-approve
description: generic change alert; the change waits for a person's approval (answered by the chaos approver, sometimes rejected)
triggers:
  - source: generic
    matchers: ['alertname="ChaosApprove"']
steps:
  - { id: look, action: note, with: { text: "change for \${{ alert.labels.service }}" } }
  - id: change
    action: http.request
    approval: required
    with: { method: POST, url: "${t}/chaos-approve/change/slow" }
    compensate: { action: http.request, with: { method: POST, url: "${t}/chaos-approve/unchange/ok" } }
  - { id: check, action: http.request, with: { method: POST, url: "${t}/chaos-approve/check/flaky" }, retry: { attempts: 3, backoff: 200ms, max_backoff: 1s } }
`,
    'chaos-undo.yaml': `
name: chaos-undo
description: generic deploy alert; the second step always fails, so the first is compensated, slowly, so kills land mid-compensation
triggers:
  - source: generic
    matchers: ['alertname="ChaosDeploy"']
steps:
  - id: deploy
    action: http.request
    with: { method: POST, url: "${t}/chaos-undo/deploy/ok" }
    compensate: { action: http.request, with: { method: POST, url: "${t}/chaos-undo/rollback/slow" } }
  - { id: smoke, action: http.request, with: { method: POST, url: "${t}/chaos-undo/smoke/fail" } }
`,
    'chaos-resolve.yaml': `
name: chaos-resolve
description: generic flapping alert; its resolve (sent soon after) aborts the run, which compensates what it did
triggers:
  - source: generic
    matchers: ['alertname="ChaosFlap"']
on_resolved: abort
steps:
  - id: drain
    action: http.request
    with: { method: POST, url: "${t}/chaos-resolve/drain/ok" }
    compensate: { action: http.request, with: { method: POST, url: "${t}/chaos-resolve/undrain/ok" } }
  - { id: settle, action: wait, with: { duration: 2s } }
  - { id: finish, action: http.request, with: { method: POST, url: "${t}/chaos-resolve/finish/ok" } }
`,
    'chaos-page.yaml': `
name: chaos-page
description: any critical alert also pages (a second run for the same episode)
triggers:
  - matchers: ['severity="critical"']
steps:
  - { id: page, action: http.request, with: { method: POST, url: "${t}/chaos-page/page/ok" } }
  - { id: done, action: note, with: { text: "paged" } }
`,
  };
}

/** The playbooks an alert starts (mirrors the triggers above). */
export function expectedPlaybooks(alert: ChaosAlert): string[] {
  const out: string[] = [];
  const name = alert.labels.alertname;
  if (alert.source === 'alertmanager' && name === 'ChaosErrorRate') out.push('chaos-rollback');
  if (alert.source === 'alertmanager' && name === 'ChaosPodCrash') out.push('chaos-restart');
  if (alert.source === 'generic' && name === 'ChaosDiskFull') out.push('chaos-disk');
  if (alert.source === 'generic' && name === 'ChaosQueueBacklog') out.push('chaos-queue');
  if (alert.source === 'generic' && name === 'ChaosApprove') out.push('chaos-approve');
  if (alert.source === 'generic' && name === 'ChaosDeploy') out.push('chaos-undo');
  if (alert.source === 'generic' && name === 'ChaosFlap') out.push('chaos-resolve');
  if (alert.labels.severity === 'critical') out.push('chaos-page');
  return out;
}

const SERVICES = Array.from({ length: 24 }, (_, i) => `svc-${String(i + 1).padStart(2, '0')}`);

function hex16(rand: () => number): string {
  let s = '';
  for (let i = 0; i < 16; i++) s += Math.floor(rand() * 16).toString(16);
  return s;
}

/**
 * `total` distinct alerts in notifications: Alertmanager groups of 1-4 alerts
 * of one alertname, generic single alerts or `{ alerts: [...] }` batches, and
 * about 5% re-sends of an earlier notification placed a little later in the stream.
 */
export function buildNotifications(total: number, seed: number, runTag: string): Notification[] {
  const rand = seededRandom(seed);
  const base = Date.now();
  const out: Notification[] = [];
  let made = 0;
  const alert = (source: ChaosAlert['source'], alertname: string): ChaosAlert => {
    const n = made++;
    const severity = rand() < 0.2 ? 'critical' : pick(rand, ['warning', 'page', 'info']);
    return {
      source,
      fingerprint: source === 'alertmanager' ? hex16(rand) : `${runTag}-g${n}`,
      startsAt: new Date(base - 60_000 + n).toISOString(),
      labels: { alertname, service: pick(rand, SERVICES), severity, namespace: 'chaos', chaos_n: String(n) },
    };
  };
  while (made < total) {
    const left = total - made;
    if (rand() < 0.5) {
      const alertname = rand() < 0.5 ? 'ChaosErrorRate' : 'ChaosPodCrash';
      const alerts = Array.from({ length: Math.min(left, between(rand, 1, 4)) }, () => alert('alertmanager', alertname));
      out.push({
        id: out.length,
        path: '/hooks/alertmanager',
        alerts,
        body: {
          receiver: 'firebreak',
          status: 'firing',
          alerts: alerts.map((a) => ({
            status: 'firing',
            labels: a.labels,
            annotations: { summary: `${alertname} on ${a.labels.service}`, runbook_url: 'https://runbooks.example/chaos' },
            startsAt: a.startsAt,
            endsAt: '0001-01-01T00:00:00Z',
            generatorURL: 'http://prometheus:9090/graph?g0.expr=up',
            fingerprint: a.fingerprint,
          })),
          groupLabels: { alertname },
          commonLabels: { alertname, namespace: 'chaos' },
          commonAnnotations: {},
          externalURL: 'http://alertmanager:9093',
          version: '4',
          groupKey: `{}:{alertname="${alertname}"}`,
          truncatedAlerts: 0,
        },
      });
    } else {
      const alertname = pick(rand, ['ChaosDiskFull', 'ChaosQueueBacklog', 'ChaosApprove', 'ChaosDeploy', 'ChaosFlap']);
      const alerts = Array.from({ length: Math.min(left, rand() < 0.8 ? 1 : between(rand, 2, 3)) }, () => alert('generic', alertname));
      const one = (a: ChaosAlert) => ({ fingerprint: a.fingerprint, labels: a.labels, annotations: { summary: `${alertname} on ${a.labels.service}` }, startsAt: a.startsAt });
      out.push({ id: out.length, path: '/hooks/generic', alerts, body: alerts.length === 1 ? one(alerts[0]!) : { alerts: alerts.map(one) } });
    }
  }
  // Resolves: a flapping alert resolves a little later (its run is aborted if still going, or has finished).
  for (const original of [...out]) {
    const flapping = original.alerts.filter((a) => a.labels.alertname === 'ChaosFlap');
    if (flapping.length === 0) continue;
    const one = (a: ChaosAlert) => ({ fingerprint: a.fingerprint, labels: a.labels, startsAt: a.startsAt, status: 'resolved' });
    const resolve: Notification = { id: 0, path: '/hooks/generic', alerts: flapping, resolves: true, body: flapping.length === 1 ? one(flapping[0]!) : { alerts: flapping.map(one) } };
    out.splice(Math.min(out.length, out.indexOf(original) + between(rand, 3, 30)), 0, resolve);
  }
  // Re-sends: the same notification again a little later, as Alertmanager does on repeat_interval.
  const originalOf = new Map<Notification, Notification>();
  for (const original of [...out]) {
    if (original.resolves || rand() >= 0.05) continue;
    const repeat: Notification = { ...original };
    originalOf.set(repeat, original);
    out.splice(Math.min(out.length, out.indexOf(original) + between(rand, 10, 40)), 0, repeat);
  }
  out.forEach((n, i) => (n.id = i));
  for (const [repeat, original] of originalOf) repeat.repeatOf = original.id;
  return out;
}
