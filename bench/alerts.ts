/**
 * Real Alertmanager webhook payloads (version "4", every field Alertmanager
 * sends), one alert per notification as with `group_by: [alertname, instance]`.
 *
 * - `new`: 90% of notifications carry a never-seen fingerprint (a new episode),
 *   10% re-send one of the last 1,000 (Alertmanager's group_interval re-sends).
 * - `repeat`: 90% re-send one of 256 long-firing alerts (same fingerprint and
 *   startsAt, so the same episode: `deliveries` is bumped), 10% are new.
 */
export type Variant = 'new' | 'repeat';

export const BENCH_ALERTNAME = 'FirebreakBenchAlert';

interface Identity {
  n: number;
  fingerprint: string;
  startsAt: string;
}

export function alertmanagerNotification(id: Identity, status: 'firing' | 'resolved' = 'firing'): Record<string, unknown> {
  const instance = `node-${id.n % 5000}.prod-eu-1.internal:9100`;
  const service = `svc-${id.n % 97}`;
  const labels = {
    alertname: BENCH_ALERTNAME,
    cluster: 'prod-eu-1',
    instance,
    job: 'node-exporter',
    namespace: 'shop',
    prometheus: 'monitoring/k8s',
    service,
    severity: id.n % 10 === 0 ? 'critical' : 'warning',
    team: 'payments',
  };
  const annotations = {
    description: `Bench alert ${id.n}: more than 5% of requests to ${service} on ${instance} failed with a 5xx for 5 minutes.`,
    runbook_url: 'https://runbooks.internal/http/high-error-rate',
    summary: `${service} 5xx ratio is 8.1% (threshold 5%)`,
  };
  return {
    receiver: 'firebreak',
    status,
    alerts: [
      {
        status,
        labels,
        annotations,
        startsAt: id.startsAt,
        endsAt: '0001-01-01T00:00:00Z',
        generatorURL:
          'http://prometheus.monitoring.svc:9090/graph?g0.expr=sum+by+%28service%29+%28rate%28http_requests_total%7Bcode%3D~%225..%22%7D%5B5m%5D%29%29+%3E+0.05&g0.tab=1',
        fingerprint: id.fingerprint,
      },
    ],
    groupLabels: { alertname: BENCH_ALERTNAME, instance },
    commonLabels: labels,
    commonAnnotations: annotations,
    externalURL: 'http://alertmanager.monitoring.svc:9093',
    version: '4',
    groupKey: `{}/{severity=~"warning|critical"}:{alertname="${BENCH_ALERTNAME}", instance="${instance}"}`,
    truncatedAlerts: 0,
  };
}

/** A deterministic generator of notification bodies; `prefix` keeps separate generators' fingerprints apart. */
export function payloadFactory(variant: Variant, prefix: string): () => { body: string; fresh: boolean } {
  const base = Date.parse('2026-01-01T00:00:00Z');
  let next = 0;
  const recent: Identity[] = [];
  const hot: Identity[] = [];
  let rng = 0x9e3779b9;
  const random = () => {
    rng ^= rng << 13;
    rng ^= rng >>> 17;
    rng ^= rng << 5;
    return (rng >>> 0) / 2 ** 32;
  };
  const fresh = (): Identity => {
    const n = next++;
    return { n, fingerprint: `${prefix}${n.toString(16).padStart(10, '0')}`, startsAt: new Date(base + n * 1000).toISOString() };
  };
  if (variant === 'repeat') for (let i = 0; i < 256; i++) hot.push(fresh());
  return () => {
    let id: Identity;
    let isNew = false;
    if (variant === 'new') {
      if (recent.length > 0 && random() < 0.1) id = recent[Math.floor(random() * recent.length)]!;
      else {
        id = fresh();
        isNew = true;
        recent.push(id);
        if (recent.length > 1000) recent.shift();
      }
    } else if (random() < 0.9) id = hot[Math.floor(random() * hot.length)]!;
    else {
      id = fresh();
      isNew = true;
    }
    return { body: JSON.stringify(alertmanagerNotification(id)), fresh: isNew };
  };
}
