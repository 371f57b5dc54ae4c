/**
 * Silences over HTTP: `POST /api/silences`, `GET /api/silences[/:id]`,
 * `DELETE /api/silences/:id`. Reads are `read`, acts are `act` (the route
 * guard); the acts themselves (src/rails) ask `firebreak/authorize` as the
 * authenticated identity, which is the author recorded. A `createdBy` in the
 * body is never an identity: one that differs from who authenticated is a 400.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { reconcileUser, requireIdentity, type Identity } from '../access/index.js';
import { ValidationError } from '../errors.js';
import { parseWith } from '../ingest/index.js';
import type { Silences } from '../rails/index.js';
import { ACT, handle, optionalBody, READ } from './http.js';

const name = z.string().trim().min(1).max(200).optional();
const matcherObject = z.object({ name: z.string(), value: z.string(), isRegex: z.boolean(), isEqual: z.boolean().optional() }).passthrough();
const silenceBody = z
  .object({
    matchers: z.union([z.string().max(10_000), z.array(z.union([z.string().max(10_000), matcherObject])).max(100), matcherObject]).optional(),
    for: z.string().trim().min(1).max(50).optional(),
    duration: z.string().trim().min(1).max(50).optional(),
    startsAt: z.string().trim().max(64).optional(),
    endsAt: z.string().trim().max(64).optional(),
    reason: z.string().max(2_000).optional(),
    /** Alertmanager's name for the reason. */
    comment: z.string().max(2_000).optional(),
    /** Alertmanager's author field: must be who authenticated, or left out. */
    createdBy: name,
    user: name,
    as: name,
  })
  // Alertmanager's v2 body carries `id` (update) and `status`; an update of an existing silence is not offered.
  .passthrough();
const listQuery = z.object({ state: z.enum(['current', 'expired', 'all']).default('current'), limit: z.coerce.number().int().min(1).max(500).default(200) });
const expireBody = z.object({ reason: z.string().max(2_000).optional(), user: name, as: name }).default({});

/** The authenticated identity; any name in the body (createdBy, user, as) must be that identity. */
function author(request: FastifyRequest, claimed: Array<[string, string | undefined]>): Identity {
  let who = requireIdentity(request);
  for (const [path, value] of claimed) {
    try {
      who = reconcileUser(who, value);
    } catch (err) {
      if (err instanceof ValidationError) throw new ValidationError(err.message.replace(/^user /, `${path} `), [{ path, message: err.details[0]?.message ?? 'must be the authenticated identity' }]);
      throw err;
    }
  }
  return who;
}

export function registerSilencesApi(app: FastifyInstance, options: { silences: Silences }): void {
  const { silences } = options;
  const read = READ;
  const act = ACT;

  app.post('/api/silences', act, handle(async (request, reply) => {
    const body = parseWith(silenceBody, optionalBody(request), 'silence');
    const who = author(request, [['createdBy', body.createdBy], ['user', body.user], ['as', body.as]]);
    if (body.for !== undefined && body.duration !== undefined && body.for !== body.duration) {
      throw new ValidationError('give the duration once (for or duration)', [{ path: 'duration', message: 'differs from for' }]);
    }
    if (body.reason !== undefined && body.comment !== undefined && body.reason.trim() !== body.comment.trim()) {
      throw new ValidationError('give the reason once (reason, or comment as Alertmanager calls it)', [{ path: 'comment', message: 'differs from reason' }]);
    }
    const duration = body.for ?? body.duration;
    const silence = await silences.create(who, {
      matchers: body.matchers,
      reason: body.reason ?? body.comment ?? '',
      ...(duration !== undefined && { duration }),
      ...(body.startsAt !== undefined && { startsAt: body.startsAt }),
      ...(body.endsAt !== undefined && { endsAt: body.endsAt }),
    });
    return reply.code(201).send(silence);
  }));
  app.get('/api/silences', read, handle(async (request) => {
    const q = parseWith(listQuery, request.query, 'query');
    return { items: await silences.list({ state: q.state, limit: q.limit }) };
  }));
  app.get('/api/silences/:id', read, handle(async (request) => silences.get((request.params as { id: string }).id)));
  app.delete('/api/silences/:id', act, handle(async (request) => {
    const body = parseWith(expireBody, optionalBody(request), 'expiry');
    const who = author(request, [['user', body.user], ['as', body.as]]);
    return silences.expire(who, (request.params as { id: string }).id, body.reason);
  }));
}
