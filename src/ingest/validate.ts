import { z } from 'zod';
import { ValidationError, type FieldProblem } from '../errors.js';
import { jsonTooDeep, MAX_JSON_DEPTH } from '../json/index.js';

/** Turn zod issues into field-level problems: `alerts.0.labels.severity: expected string`. */
export function zodProblems(error: z.ZodError): FieldProblem[] {
  return error.issues.map((issue) => ({
    path: issue.path.length > 0 ? issue.path.map(String).join('.') : '(body)',
    message: issue.message,
  }));
}

export function parseJsonBody(raw: Buffer | string | undefined): unknown {
  const text = raw === undefined ? '' : typeof raw === 'string' ? raw : raw.toString('utf8');
  if (text.trim() === '') throw new ValidationError('request body is empty; expected a JSON object', [{ path: '(body)', message: 'empty body' }]);
  if (jsonTooDeep(text) !== undefined) {
    throw new ValidationError(`request body is nested deeper than ${MAX_JSON_DEPTH} levels`, [{ path: '(body)', message: `nested deeper than ${MAX_JSON_DEPTH} levels of arrays and objects` }]);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ValidationError('request body is not valid JSON', [{ path: '(body)', message: (err as Error).message }]);
  }
}

export function parseWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new ValidationError(`invalid ${what}`, zodProblems(result.error));
  return result.data;
}

/** RFC 3339 timestamp as Alertmanager and most tools send it (offset or Z, optional fraction). */
export const rfc3339 = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i, 'must be an RFC 3339 timestamp')
  .refine((v) => !Number.isNaN(Date.parse(v)), 'must be a valid date');

export const stringMap = z.record(z.string(), z.string({ message: 'must be a string' }));
