/**
 * Typed errors shared across concerns. Each carries a stable `code` and the
 * context a reader needs (run, step, field); whether to retry is part of the type.
 */
export abstract class FirebreakError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** One problem with user-supplied input, named by its path (`alerts[0].labels`, `PORT`). */
export interface FieldProblem {
  path: string;
  message: string;
}

/** Input (HTTP body, env, YAML, Slack payload) failed validation. Never retried. */
export class ValidationError extends FirebreakError {
  readonly code = 'validation_failed';
  constructor(message: string, readonly details: FieldProblem[]) {
    super(message);
  }
}

/** The database could not be reached; callers answer 503 and try again later. */
export class DatabaseUnavailableError extends FirebreakError {
  readonly code = 'database_unavailable';
}

/** A step's action failed. `retryable: false` skips remaining retry attempts. */
export class ActionError extends FirebreakError {
  readonly code: string = 'action_failed';
  readonly retryable: boolean;
  readonly details?: unknown;
  constructor(message: string, options: { retryable?: boolean; cause?: unknown; details?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.retryable = options.retryable ?? true;
    this.details = options.details;
  }
}

/** A step ran past its `timeout`. */
export class StepTimeoutError extends ActionError {
  override readonly code: string = 'step_timeout';
  constructor(readonly stepId: string, readonly timeoutMs: number) {
    super(`step ${stepId} timed out after ${timeoutMs} ms`, { retryable: true });
  }
}

/** A remote asked us to come back later (Slack 429 with Retry-After). */
export class RetryAfterError extends FirebreakError {
  readonly code = 'retry_after';
  constructor(message: string, readonly retryAfterMs: number) {
    super(message);
  }
}

/** A policy said no. Never retried. */
export class PolicyDeniedError extends FirebreakError {
  readonly code = 'policy_denied';
  constructor(readonly runId: string, readonly stepId: string, readonly reasons: string[]) {
    super(`policy denied step ${stepId} of run ${runId}: ${reasons.join('; ') || 'no reason given'}`);
  }
}

/** `firebreak/authorize` (or a fixed rule) refused an act. Never retried; HTTP 403. */
export class AccessDeniedError extends FirebreakError {
  readonly code = 'access_denied';
  constructor(readonly action: string, readonly actor: string, readonly reasons: string[]) {
    super(`${actor} may not ${action}: ${reasons.join('; ') || 'no rule allows it'}`);
  }
}

/** Something named by id does not exist (run, approval, playbook). */
export class NotFoundError extends FirebreakError {
  readonly code = 'not_found';
}

/** The request conflicts with recorded state (an approval already decided). */
export class ConflictError extends FirebreakError {
  readonly code = 'conflict';
}

/** The schema cannot be brought up to date by this role (or the grant step failed). */
export class MigrationError extends FirebreakError {
  readonly code = 'migration_failed';
  constructor(message: string, readonly pending: string[], options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Normalise anything thrown into an Error, once, at a boundary. */
export function coerceError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : JSON.stringify(value));
}

/**
 * Text a person typed that Postgres must store as is (a reason, a matcher):
 * NUL and lone surrogates are refused by text and jsonb columns, so they are
 * a ValidationError naming the field here instead of a failed write (500).
 */
export function checkStorableText(value: string, path: string): string {
  if (value.includes('\u0000')) throw new ValidationError(`${path} must not contain a NUL character`, [{ path, message: 'contains U+0000' }]);
  if (!value.isWellFormed()) throw new ValidationError(`${path} must be well-formed Unicode`, [{ path, message: 'contains a lone surrogate' }]);
  return value;
}
