import { DatabaseUnavailableError, FirebreakError } from '../errors.js';

/** Postgres SQLSTATE codes we act on, by name rather than by message text. */
export const PgCode = {
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
  checkViolation: '23514',
  insufficientPrivilege: '42501',
  untranslatableCharacter: '22P05',
  invalidTextRepresentation: '22P02',
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  cannotConnectNow: '57P03',
  tooManyConnections: '53300',
  deadlockDetected: '40P01',
  serializationFailure: '40001',
} as const;

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN']);

/** True when the error means "the database is not there right now" (answer 503, retry later). */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (err instanceof DatabaseUnavailableError) return true;
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: unknown; message?: unknown; errors?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  if (NETWORK_CODES.has(code)) return true;
  if (code.startsWith('08') || code === PgCode.adminShutdown || code === PgCode.crashShutdown || code === PgCode.cannotConnectNow || code === PgCode.tooManyConnections || code === PgCode.deadlockDetected || code === PgCode.serializationFailure) return true;
  const message = typeof e.message === 'string' ? e.message : '';
  if (/Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED|Connection terminated unexpectedly|the database system is (starting up|shutting down)/i.test(message)) return true;
  // AggregateError from dual-stack connects
  if (Array.isArray(e.errors)) return e.errors.some(isDatabaseUnavailable);
  return false;
}

export function pgErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Embedded Postgres could not be prepared or started. The message is one line:
 * what went wrong, then what to do about it (`hint`), for `firebreak serve` to
 * print before exiting 1.
 */
export class EmbeddedPostgresError extends FirebreakError {
  readonly code = 'embedded_postgres_failed';
  constructor(readonly problem: string, readonly hint: string, options?: { cause?: unknown }) {
    super(`embedded PostgreSQL: ${oneLine(problem)}. ${capitalise(oneLine(hint))}.`, options);
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
