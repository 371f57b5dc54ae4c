/** What the engine stores about a step's result: its error as JSON, its output bounded. The one place both are made. */
import { ActionError, coerceError, ValidationError } from '../errors.js';
import type { ErrorInfo } from '../timeline/index.js';

const MAX_STORED_OUTPUT = 64 * 1024;

/** An output too large for a row is kept as a preview. */
export function boundedOutput(value: unknown): unknown {
  const text = JSON.stringify(value ?? null);
  if (text.length <= MAX_STORED_OUTPUT) return value ?? null;
  return { truncated: true, bytes: text.length, preview: text.slice(0, 4_096) };
}

/** Anything thrown by a step, as stored in step rows, attempts and events (redacted by the caller's writer). */
export function errorInfo(err: unknown): ErrorInfo {
  const e = coerceError(err);
  return {
    message: e.message,
    code: String((e as { code?: unknown }).code ?? 'error'),
    ...(e instanceof ActionError && { retryable: e.retryable }),
    ...(e instanceof ActionError && e.details !== undefined && { details: e.details }),
    ...(e instanceof ValidationError && { details: e.details }),
  };
}
