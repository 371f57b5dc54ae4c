import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/index.js';
import {
  alertmanagerPayload,
  datadogPayload,
  genericPayload,
  grafanaPayload,
  normaliseAlertmanager,
  normaliseDatadog,
  normaliseGeneric,
  normaliseGrafana,
  normalisePagerDuty,
  pagerdutyPayload,
  parseJsonBody,
  parseWith,
  verifyGrafanaSignature,
  verifyPagerDutySignature,
  PAGERDUTY_DEADLINE_MS,
  PAGERDUTY_DELIVERY_HEADER,
  PAGERDUTY_SIGNATURE_HEADER,
  type Ingestor,
  type IngestResult,
  type Notification,
} from '../ingest/index.js';
import { errorBody, sendError } from './http.js';

/** A webhook source: how to read its body into a notification. */
interface HookSource {
  path: string;
  /** Extra authentication on the raw body (signatures); throw-free: return an error message or undefined. */
  verify?: (request: FastifyRequest, raw: Buffer) => string | undefined;
  parse: (body: unknown, request: FastifyRequest) => Omit<Notification, 'payload'>;
  /** Answer 503 (the sender retries) when storing takes longer than this; the store still completes or rolls back. */
  deadlineMs?: number;
}

/** Storing outlived the source's deadline. */
class DeadlineExceeded extends Error {}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineExceeded(`not stored within ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  const value = Array.isArray(v) ? v[0] : v;
  return value?.trim() || undefined;
}

export interface HookOptions {
  config: Config;
  ingestor: Ingestor;
  /** In-flight webhook requests beyond this answer 503 (overload), never 429. */
  maxInFlight?: number;
}

function hookSources(config: Config): HookSource[] {
  return [
    {
      path: '/hooks/alertmanager',
      parse: (body) => ({ source: 'alertmanager', alerts: normaliseAlertmanager(parseWith(alertmanagerPayload, body, 'Alertmanager webhook payload')) }),
    },
    {
      path: '/hooks/grafana',
      // Signed only when FIREBREAK_GRAFANA_SECRET is set (Grafana's HMAC config is optional).
      ...(config.grafanaSecret && { verify: (request: FastifyRequest, raw: Buffer) => verifyGrafanaSignature(config.grafanaSecret!, request.headers, raw) }),
      parse: (body) => ({ source: 'grafana', alerts: normaliseGrafana(parseWith(grafanaPayload, body, 'Grafana webhook payload')) }),
    },
    {
      path: '/hooks/pagerduty',
      // Always verified: with no secret every delivery is refused.
      verify: (request, raw) => verifyPagerDutySignature(config.pagerdutySecret, request.headers[PAGERDUTY_SIGNATURE_HEADER], raw),
      parse: (body, request) => {
        const payload = parseWith(pagerdutyPayload, body, 'PagerDuty v3 webhook payload');
        const deliveryId = header(request, PAGERDUTY_DELIVERY_HEADER) ?? `event:${payload.event.id}`;
        return { source: 'pagerduty', alerts: normalisePagerDuty(payload), deliveryId };
      },
      deadlineMs: PAGERDUTY_DEADLINE_MS,
    },
    {
      path: '/hooks/datadog',
      parse: (body) => ({ source: 'datadog', alerts: normaliseDatadog(parseWith(datadogPayload, body, 'Datadog webhook payload')) }),
    },
    {
      path: '/hooks/generic',
      parse: (body) => ({ source: 'generic', alerts: normaliseGeneric(parseWith(genericPayload, body, 'generic alert'), new Date()) }),
    },
  ];
}

function acceptedBody(result: IngestResult) {
  return {
    status: 'accepted',
    duplicateDelivery: !result.stored,
    runs: result.runs,
    startedRuns: result.startedRuns,
    // What became of each alert per playbook; the reasons (who paused, a silence's comment) are for
    // people signed in (GET /api/alerts), not for whoever can post an alert.
    outcomes: result.outcomes.map((o) => ({ playbook: o.playbook, outcome: o.outcome, ...(o.runId && { runId: o.runId }) })),
    episodes: result.episodes.map((e) => ({
      id: e.id,
      fingerprint: e.fingerprint,
      startsAt: e.startsAt,
      status: e.status,
      deliveries: e.deliveries,
      runs: [...new Set([...e.existingRuns, ...e.newRuns])],
    })),
  };
}

export function registerHooks(app: FastifyInstance, options: HookOptions, extraSources: HookSource[] = []): void {
  const maxInFlight = options.maxInFlight ?? 1_000;
  let inFlight = 0;
  for (const source of [...hookSources(options.config), ...extraSources]) {
    // `webhook`: the access guard checks FIREBREAK_WEBHOOK_TOKEN (when set) before this runs.
    app.post(source.path, { config: { access: 'webhook' } }, async (request: FastifyRequest, reply: FastifyReply) => {
      const raw = request.body as Buffer | undefined;
      if (source.verify) {
        const problem = source.verify(request, raw ?? Buffer.alloc(0));
        if (problem) return reply.code(401).send(errorBody(problem));
      }
      if (inFlight >= maxInFlight) {
        return reply.code(503).header('retry-after', '1').send(errorBody('server overloaded; retry later'));
      }
      inFlight += 1;
      const release = () => {
        inFlight -= 1;
      };
      let work: Promise<IngestResult> | undefined;
      try {
        const body = parseJsonBody(raw);
        const parsed = source.parse(body, request);
        work = options.ingestor.ingest({ ...parsed, payload: body });
        const result = await (source.deadlineMs ? withDeadline(work, source.deadlineMs) : work);
        return reply.code(202).send(acceptedBody(result));
      } catch (err) {
        if (err instanceof DeadlineExceeded) {
          request.log.warn({ path: source.path, err: err.message }, 'webhook answered 503: storing is slow');
          return reply.code(503).header('retry-after', '5').send(errorBody('alert not stored in time; retry later'));
        }
        return sendError(reply, err);
      } finally {
        // A request answered at its deadline still holds its slot until the store finishes.
        if (work) void work.then(release, release);
        else release();
      }
    });
  }
}

export type { HookSource };
