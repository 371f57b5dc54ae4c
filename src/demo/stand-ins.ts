/**
 * Local stand-ins for what the sample playbooks call in production: a
 * Prometheus HTTP API, a deploy API and the Kubernetes API. They share one
 * small world (a few services, deployments and a crash-looping pod), so a
 * mitigation changes what the next query sees: after a rollback the error
 * ratio falls, after a scale-out the latency does, after a pod is deleted it
 * stops crash-looping. Answers use the real services' JSON shapes.
 *
 * Demo only: nothing in the server imports this module.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServiceState {
  namespace: string;
  /** 5xx ratio before and after a rollback. */
  errorRatio: { before: number; after: number };
  /** p99 latency in seconds before and after a scale-out of its deployment. */
  p99: { before: number; after: number };
  deployments: Array<{ id: string; version: string; deployedAt: string; author: string }>;
  rolledBack: boolean;
}

export interface DeploymentState {
  namespace: string;
  name: string;
  service: string;
  replicas: number;
  scaledOut: boolean;
}

export interface PodState {
  namespace: string;
  name: string;
  container: string;
  restarts: number;
  deleted: boolean;
}

/** Every change a playbook made through the stand-ins, in order. */
export interface ChangeRecord {
  at: string;
  what: 'rollback' | 'roll-forward' | 'scale' | 'delete-pod';
  target: string;
  detail: string;
  idempotencyKey: string | undefined;
}

export interface DemoWorld {
  services: Map<string, ServiceState>;
  deployments: DeploymentState[];
  pods: PodState[];
  changes: ChangeRecord[];
}

const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();

/** The services of the sample alerts in examples/alerts, unhealthy the way those alerts say. */
export function sampleWorld(): DemoWorld {
  const service = (namespace: string, errorRatio: number, p99: number, versions: [string, string]): ServiceState => ({
    namespace,
    errorRatio: { before: errorRatio, after: 0.0042 },
    p99: { before: p99, after: 0.31 },
    deployments: [
      { id: `dep-${namespace}-1843`, version: versions[1], deployedAt: minutesAgo(14), author: 'ci' },
      { id: `dep-${namespace}-1791`, version: versions[0], deployedAt: minutesAgo(60 * 26), author: 'ci' },
    ],
    rolledBack: false,
  });
  return {
    services: new Map([
      ['checkout', service('shop', 0.081, 0.18, ['v2.14.0', 'v2.14.1'])],
      ['search', service('search', 0.003, 1.24, ['v7.2.0', 'v7.3.0'])],
      ['cart', service('shop', 0.012, 0.09, ['v1.30.2', 'v1.31.0'])],
    ]),
    deployments: [
      { namespace: 'shop', name: 'checkout', service: 'checkout', replicas: 6, scaledOut: false },
      { namespace: 'search', name: 'search-api', service: 'search', replicas: 4, scaledOut: false },
      { namespace: 'shop', name: 'cart', service: 'cart', replicas: 3, scaledOut: false },
    ],
    pods: [{ namespace: 'shop', name: 'cart-7d9f8b6c5-x2k4p', container: 'cart', restarts: 7, deleted: false }],
    changes: [],
  };
}

export interface StandIn {
  name: string;
  url: string;
  /** `host:port`, for FIREBREAK_HTTP_ALLOW. */
  host: string;
  close(): Promise<void>;
}

interface Exchange {
  req: IncomingMessage;
  url: URL;
  body: string;
  send(status: number, body: unknown): void;
}

type Handler = (x: Exchange, params: string[]) => void;
type Route = [method: string, pattern: RegExp, handler: Handler];

async function listen(name: string, routes: Route[], authorise: (req: IncomingMessage) => boolean, onError: (message: string) => void): Promise<StandIn> {
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > 1_000_000) req.destroy();
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://stand-in');
      const send = (status: number, payload: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(payload));
      };
      try {
        if (!authorise(req)) return send(401, { message: 'missing or wrong bearer token' });
        const path = decodeURIComponent(url.pathname);
        for (const [method, pattern, handler] of routes) {
          const match = pattern.exec(path);
          if (match && (method === req.method || (method === 'GET' && req.method === 'POST' && path.endsWith('/query')))) return handler({ req, url, body, send }, match.slice(1));
        }
        send(404, { message: `${name} stand-in: no ${req.method} ${url.pathname}` });
      } catch (err) {
        onError(`${name} stand-in: ${(err as Error).message}`);
        send(500, { message: (err as Error).message });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const bearer = (token: string) => (req: IncomingMessage) => req.headers.authorization === `Bearer ${token}`;
const label = (query: string, name: string) => new RegExp(`${name}\\s*=\\s*"((?:[^"\\\\]|\\\\.)*)"`).exec(query)?.[1];
// A little noise, so numbers read like measurements rather than constants.
const jitter = (value: number) => value * (1 + (Math.random() - 0.5) * 0.04);

/**
 * Prometheus' instant-query API (`GET|POST /api/v1/query`), answering the
 * queries of the sample playbooks from the world; anything else is an empty
 * vector, as Prometheus answers a metric it does not have.
 */
export function startPrometheus(world: DemoWorld, onError: (message: string) => void): Promise<StandIn> {
  const evaluate = (query: string): Array<{ metric: Record<string, string>; value: number }> => {
    const service = label(query, 'service');
    const state = service ? world.services.get(service) : undefined;
    if (/http_requests_total/.test(query) && /code\s*=~\s*"5/.test(query) && state) {
      return [{ metric: {}, value: jitter(state.rolledBack ? state.errorRatio.after : state.errorRatio.before) }];
    }
    if (/http_request_duration_seconds_bucket/.test(query) && state) {
      const scaled = world.deployments.some((d) => d.service === service && d.scaledOut);
      return [{ metric: {}, value: jitter(scaled ? state.p99.after : state.p99.before) }];
    }
    const pod = world.pods.find((p) => p.namespace === label(query, 'namespace') && p.name === label(query, 'pod'));
    if (/kube_pod_container_status_restarts_total/.test(query) && pod) {
      return [{ metric: { namespace: pod.namespace, pod: pod.name, container: pod.container }, value: pod.deleted ? 0 : pod.restarts }];
    }
    if (/kube_pod_container_status_waiting_reason/.test(query) && pod) {
      return [{ metric: {}, value: pod.deleted ? 0 : 1 }];
    }
    if (/node_filesystem_avail_bytes/.test(query)) return [{ metric: { instance: label(query, 'instance') ?? '', mountpoint: label(query, 'mountpoint') ?? '/' }, value: 4.12 }];
    return [];
  };
  return listen(
    'Prometheus',
    [
      [
        'GET',
        /^\/api\/v1\/query$/,
        ({ url, body, req, send }) => {
          const params = req.method === 'POST' ? new URLSearchParams(body) : url.searchParams;
          const query = params.get('query') ?? '';
          if (!query.trim()) return send(400, { status: 'error', errorType: 'bad_data', error: 'invalid parameter "query": unknown position: parse error: no expression found in input' });
          const time = Number(params.get('time')) || Date.now() / 1000;
          const result = evaluate(query).map((s) => ({ metric: s.metric, value: [time, String(Number(s.value.toPrecision(4)))] }));
          send(200, { status: 'success', data: { resultType: 'vector', result } });
        },
      ],
    ],
    () => true,
    onError,
  );
}

/** A deploy API: deployments of a service, rollback and roll-forward, idempotent per Idempotency-Key. */
export function startDeployApi(world: DemoWorld, token: string, onChange: (change: ChangeRecord) => void, onError: (message: string) => void): Promise<StandIn> {
  const answered = new Map<string, unknown>();
  const change = (x: Exchange, what: ChangeRecord['what'], service: string, act: (s: ServiceState) => Record<string, unknown>) => {
    const state = world.services.get(service);
    if (!state) return x.send(404, { message: `no service ${service}` });
    const key = x.req.headers['idempotency-key'] as string | undefined;
    // The same attempt sent twice (a retry after a lost answer) is answered, not repeated.
    if (key && answered.has(`${what}:${key}`)) return x.send(200, answered.get(`${what}:${key}`));
    const reason = (() => {
      try {
        return (JSON.parse(x.body || '{}') as { reason?: string }).reason;
      } catch {
        return undefined;
      }
    })();
    const result = { service, ...act(state), reason: reason ?? null, at: new Date().toISOString() };
    if (key) answered.set(`${what}:${key}`, result);
    const record: ChangeRecord = { at: result.at, what, target: service, detail: JSON.stringify(result), idempotencyKey: key };
    world.changes.push(record);
    onChange(record);
    x.send(200, result);
  };
  return listen(
    'deploy API',
    [
      ['GET', /^\/api\/services\/([^/]+)\/deployments$/, ({ url, send }, [service]) => {
        const state = world.services.get(service!);
        if (!state) return send(404, { message: `no service ${service}` });
        const limit = Math.max(1, Number(url.searchParams.get('limit')) || 20);
        send(200, { service, items: state.deployments.slice(0, limit) });
      }],
      ['POST', /^\/api\/services\/([^/]+)\/rollback$/, (x, [service]) =>
        change(x, 'rollback', service!, (s) => {
          const [current, previous] = s.deployments;
          s.rolledBack = true;
          const to = previous?.version ?? current!.version;
          s.deployments.unshift({ id: `dep-${s.namespace}-${1844 + s.deployments.length}`, version: to, deployedAt: new Date().toISOString(), author: 'firebreak' });
          return { rolledBack: true, from: current!.version, to };
        })],
      ['POST', /^\/api\/services\/([^/]+)\/roll-forward$/, (x, [service]) =>
        change(x, 'roll-forward', service!, (s) => {
          s.rolledBack = false;
          const forward = s.deployments.find((d) => d.author !== 'firebreak');
          return { rolledForward: true, to: forward?.version ?? null };
        })],
      ['GET', /^\/api\/changes$/, ({ send }) => send(200, { items: world.changes })],
    ],
    (req) => new URL(req.url ?? '/', 'http://x').pathname === '/api/changes' || bearer(token)(req),
    onError,
  );
}

const notFound = (kind: string, name: string) => ({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `${kind} "${name}" not found`, reason: 'NotFound', code: 404 });

/** The slice of the Kubernetes API the sample playbooks use: a Deployment's scale subresource and Pods. */
export function startKubernetesApi(world: DemoWorld, token: string, onChange: (change: ChangeRecord) => void, onError: (message: string) => void): Promise<StandIn> {
  const scaleOf = (d: DeploymentState) => ({
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: { name: d.name, namespace: d.namespace },
    spec: { replicas: d.replicas },
    status: { replicas: d.replicas, selector: `app=${d.name}` },
  });
  const podOf = (p: PodState) => ({
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: { name: p.name, namespace: p.namespace, labels: { app: p.container } },
    status: {
      phase: 'Running',
      containerStatuses: [
        {
          name: p.container,
          ready: false,
          restartCount: p.restarts,
          state: { waiting: { reason: 'CrashLoopBackOff', message: `back-off 5m0s restarting failed container=${p.container}` } },
          lastState: { terminated: { exitCode: 1, reason: 'Error', finishedAt: new Date(Date.now() - 40_000).toISOString() } },
        },
      ],
    },
  });
  const record = (what: ChangeRecord['what'], target: string, detail: string, req: IncomingMessage) => {
    const change: ChangeRecord = { at: new Date().toISOString(), what, target, detail, idempotencyKey: req.headers['idempotency-key'] as string | undefined };
    world.changes.push(change);
    onChange(change);
  };
  const deployment = (ns: string, name: string) => world.deployments.find((d) => d.namespace === ns && d.name === name);
  const pod = (ns: string, name: string) => world.pods.find((p) => p.namespace === ns && p.name === name && !p.deleted);
  return listen(
    'Kubernetes API',
    [
      ['GET', /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/]+)\/scale$/, ({ send }, [ns, name]) => {
        const d = deployment(ns!, name!);
        send(d ? 200 : 404, d ? scaleOf(d) : notFound('deployments.apps', name!));
      }],
      ['PATCH', /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/]+)\/scale$/, ({ req, body, send }, [ns, name]) => {
        const d = deployment(ns!, name!);
        if (!d) return send(404, notFound('deployments.apps', name!));
        const replicas = (JSON.parse(body || '{}') as { spec?: { replicas?: unknown } }).spec?.replicas;
        if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) return send(422, { kind: 'Status', status: 'Failure', message: 'spec.replicas: must be a non-negative integer', reason: 'Invalid', code: 422 });
        const from = d.replicas;
        d.scaledOut = d.scaledOut || replicas > from;
        d.replicas = replicas;
        if (replicas !== from) record('scale', `${ns}/${name}`, `${from} -> ${replicas} replicas`, req);
        send(200, scaleOf(d));
      }],
      ['GET', /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/, ({ send }, [ns, name]) => {
        const p = pod(ns!, name!);
        send(p ? 200 : 404, p ? podOf(p) : notFound('pods', name!));
      }],
      ['DELETE', /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/, ({ req, send }, [ns, name]) => {
        const p = pod(ns!, name!);
        if (!p) return send(404, notFound('pods', name!));
        p.deleted = true;
        record('delete-pod', `${ns}/${name}`, 'deleted; its ReplicaSet starts a fresh pod', req);
        send(200, podOf(p));
      }],
    ],
    bearer(token),
    onError,
  );
}
