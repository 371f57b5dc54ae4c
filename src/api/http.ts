import type { FastifyReply, FastifyRequest } from 'fastify';
import { reconcileUser, requireIdentity, type Identity } from '../access/index.js';
import { parseJsonBody } from '../ingest/index.js';
import { AccessDeniedError, ConflictError, FirebreakError, NotFoundError, ValidationError, type FieldProblem } from '../errors.js';
import { isDatabaseUnavailable } from '../store/index.js';

// The credential helpers live with identity and access; hooks use them from here.
export { bearerToken, secretsEqual } from '../access/index.js';

export interface ErrorBody {
  error: string;
  details: FieldProblem[];
}

export function errorBody(error: string, details: FieldProblem[] = []): ErrorBody {
  return { error, details };
}

/**
 * Map any error to the contract's status codes. Temporary problems are 503
 * (Alertmanager retries only 5xx); nothing here answers 500 for bad input.
 */
export function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof ValidationError) return reply.code(400).send(errorBody(err.message, err.details));
  if (err instanceof NotFoundError) return reply.code(404).send(errorBody(err.message));
  if (err instanceof AccessDeniedError) return reply.code(403).send({ ...errorBody(err.message), action: err.action, actor: err.actor, reasons: err.reasons });
  if (err instanceof ConflictError) return reply.code(409).send(errorBody(err.message));
  if (isDatabaseUnavailable(err)) {
    return reply.code(503).header('retry-after', '5').send(errorBody('database unavailable; retry later'));
  }
  reply.log.error({ err }, 'request failed');
  const message = err instanceof FirebreakError ? err.message : 'internal error';
  return reply.code(500).send(errorBody(message));
}

/** A route handler whose errors are answered by sendError (typed errors to their status codes). */
export const handle =
  <T>(fn: (request: FastifyRequest, reply: FastifyReply) => Promise<T>) =>
  async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      return await fn(request, reply);
    } catch (err) {
      return sendError(reply, err);
    }
  };

/** The JSON body of an act; an empty body is `{}` (every field optional). */
export function optionalBody(request: FastifyRequest): unknown {
  const raw = request.body as Buffer | undefined;
  return raw && raw.length > 0 ? parseJsonBody(raw) : {};
}

/** Access rules of /api routes (src/access/guard.ts): reads, and acts (then asked of firebreak/authorize). */
export const READ = { config: { access: 'read' as const } };
export const ACT = { config: { access: 'act' as const } };

/** Who a route is acting for: the authenticated identity, reconciled with a `user` (or `as`) in the body. */
export function actingIdentity(request: FastifyRequest, body: { user?: string | undefined; as?: string | undefined }): Identity {
  const who = requireIdentity(request);
  if (body.user !== undefined && body.as !== undefined && body.user !== body.as) {
    throw new ValidationError('user and as name different people; leave both out: the actor is always the authenticated identity', [{ path: 'as', message: `differs from user (${body.user})` }]);
  }
  return reconcileUser(who, body.user ?? body.as);
}
