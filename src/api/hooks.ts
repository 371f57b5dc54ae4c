import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/index.js';
import {
  alertmanagerPayload,
  genericPayload,
  normaliseAlertmanager,
  normaliseGeneric,
  parseJsonBody,
  parseWith,
  type Ingestor,
  type IngestResult,
  type Notification,
} from '../ingest/index.js';
import { bearerToken, errorBody, secretsEqual, sendError } from './http.js';

/** A webhook source: how to read its body into a notification. */
interface HookSource {
  path: string;
  /** Extra authentication on the raw body (signatures); throw-free: return an error message or undefined. */
  verify?: (request: FastifyRequest, raw: Buffer) => string | undefined;
  parse: (body: unknown, request: FastifyRequest) => Omit<Notification, 'payload'>;
}

export interface HookOptions {
  config: Config;
  ingestor: Ingestor;
  /** In-flight webhook requests beyond this answer 503 (overload), never 429. */
  maxInFlight?: number;
  onIngested?: () => void;
}

function hookSources(): HookSource[] {
  return [
    {
      path: '/hooks/alertmanager',
      parse: (body) => ({ source: 'alertmanager', alerts: normaliseAlertmanager(parseWith(alertmanagerPayload, body, 'Alertmanager webhook payload')) }),
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
  for (const source of [...hookSources(), ...extraSources]) {
    app.post(source.path, async (request: FastifyRequest, reply: FastifyReply) => {
      const token = options.config.webhookToken;
      if (token) {
        const presented = bearerToken(request);
        if (!presented || !secretsEqual(presented, token)) {
          return reply.code(401).header('www-authenticate', 'Bearer').send(errorBody('missing or invalid bearer token', [{ path: 'Authorization', message: 'expected Authorization: Bearer <FIREBREAK_WEBHOOK_TOKEN>' }]));
        }
      }
      const raw = request.body as Buffer | undefined;
      if (source.verify) {
        const problem = source.verify(request, raw ?? Buffer.alloc(0));
        if (problem) return reply.code(401).send(errorBody(problem));
      }
      if (inFlight >= maxInFlight) {
        return reply.code(503).header('retry-after', '1').send(errorBody('server overloaded; retry later'));
      }
      inFlight += 1;
      try {
        const body = parseJsonBody(raw);
        const parsed = source.parse(body, request);
        const result = await options.ingestor.ingest({ ...parsed, payload: body });
        if (result.startedRuns.length > 0) options.onIngested?.();
        return reply.code(202).send(acceptedBody(result));
      } catch (err) {
        return sendError(reply, err);
      } finally {
        inFlight -= 1;
      }
    });
  }
}

export type { HookSource };
