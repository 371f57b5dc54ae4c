import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ConflictError, FirebreakError, NotFoundError, ValidationError, type FieldProblem } from '../errors.js';
import { isDatabaseUnavailable } from '../store/index.js';

export interface ErrorBody {
  error: string;
  details: FieldProblem[];
}

export function errorBody(error: string, details: FieldProblem[] = []): ErrorBody {
  return { error, details };
}

/** Constant-time comparison of a presented secret with the expected one. */
export function secretsEqual(presented: string, expected: string): boolean {
  // Hash both so lengths match and timing says nothing about the expected length.
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && presented.length === expected.length;
}

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(.+)$/i.exec(header.trim());
  return match?.[1]?.trim();
}

/**
 * Map any error to the contract's status codes. Temporary problems are 503
 * (Alertmanager retries only 5xx); nothing here answers 500 for bad input.
 */
export function sendError(reply: FastifyReply, err: unknown): FastifyReply {
  if (err instanceof ValidationError) return reply.code(400).send(errorBody(err.message, err.details));
  if (err instanceof NotFoundError) return reply.code(404).send(errorBody(err.message));
  if (err instanceof ConflictError) return reply.code(409).send(errorBody(err.message));
  if (isDatabaseUnavailable(err)) {
    return reply.code(503).header('retry-after', '5').send(errorBody('database unavailable; retry later'));
  }
  reply.log.error({ err }, 'request failed');
  const message = err instanceof FirebreakError ? err.message : 'internal error';
  return reply.code(500).send(errorBody(message));
}
