import { z } from 'zod';
import { ActionError } from '../errors.js';
import { refuseInDryRun } from './dry-run.js';
import { durationSchema } from './duration.js';
import { httpCall, isJsonContentType, isRetryableStatus } from './http-core.js';
import { templateField } from '../expr/index.js';
import { jsonTooDeep } from '../json/index.js';
import { defineAction, done } from './types.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const MiB = 1024 * 1024;
// Headers worth keeping in the run record; cookies and the like are left out on purpose.
const KEPT_HEADERS = ['content-type', 'content-length', 'location', 'etag', 'last-modified', 'retry-after', 'date', 'x-request-id'];

export const httpUrl = z.string().refine((v) => {
  try {
    return ['http:', 'https:'].includes(new URL(v).protocol);
  } catch {
    return false;
  }
}, 'must be an absolute http(s) URL');

/** An expected status: 204, or a class like "2xx". */
const statusPattern = z.union([
  z.number().int().min(100).max(599),
  z.string().regex(/^[1-5]xx$/i, 'must be a status code or a class like "2xx"'),
]);

export const httpRequestInput = z
  .strictObject({
    method: z.string().toUpperCase().pipe(z.enum(METHODS)).default('GET'),
    // Each ${{ }} in the URL is percent-encoded for its position (path segment, query value).
    url: templateField(httpUrl, 'url'),
    headers: z.record(z.string(), z.union([z.string(), z.number()]).transform(String)).optional(),
    body: z.union([z.string(), z.json()]).optional(),
    timeout: durationSchema.default(30_000),
    expect_status: z.array(statusPattern).min(1).optional(),
    max_response_bytes: z.number().int().positive().default(MiB),
  })
  .refine((v) => v.body === undefined || (v.method !== 'GET' && v.method !== 'HEAD'), {
    message: 'GET and HEAD requests cannot have a body',
    path: ['body'],
  });

export type HttpRequestInput = z.output<typeof httpRequestInput>;

function statusMatcher(expect: HttpRequestInput['expect_status']): (status: number) => boolean {
  if (!expect) return (s) => s >= 200 && s < 300;
  return (s) => expect.some((e) => (typeof e === 'number' ? e === s : Math.floor(s / 100) === Number(e[0])));
}

/** Headers and body as they go on the wire: JSON bodies are serialised and labelled. */
export function renderRequest(input: HttpRequestInput): { headers: Record<string, string>; body: string | undefined } {
  const headers: Record<string, string> = { ...input.headers };
  if (input.body === undefined || typeof input.body === 'string') return { headers, body: input.body };
  if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  return { headers, body: JSON.stringify(input.body) };
}

export function pickHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const v = headers[name];
    if (v !== undefined) out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

export function parseBody(text: string, contentType: unknown): unknown {
  // Too deep to walk safely later (redaction, hashing): kept as the text it is.
  if (!isJsonContentType(contentType) || text === '' || jsonTooDeep(text) !== undefined) return text;
  try {
    return JSON.parse(text);
  } catch {
    return text; // a server that mislabels its body should not fail the step
  }
}

export const httpRequest = defineAction({
  name: 'http.request',
  input: httpRequestInput,
  sideEffect: (input) => input.method !== 'GET' && input.method !== 'HEAD',
  target: (input) => new URL(input.url).hostname,
  describe: (input, ctx) => {
    const { headers, body } = renderRequest(input);
    if (ctx) headers['Idempotency-Key'] = ctx.idempotencyKey;
    return { method: input.method, url: input.url, headers, body: body ?? null };
  },
  async run(input, ctx) {
    if (input.method !== 'GET' && input.method !== 'HEAD') refuseInDryRun('http.request', ctx);
    const expected = statusMatcher(input.expect_status);
    const { headers, body } = renderRequest(input);
    const reply = await httpCall(
      {
        method: input.method,
        url: input.url,
        headers,
        body,
        timeoutMs: input.timeout,
        maxBytes: input.max_response_bytes,
        // Only an explicitly listed 3xx is returned as is; "2xx" never stops a redirect.
        keepStatuses: (s) => input.expect_status?.includes(s) ?? false,
      },
      ctx,
    );
    const output = { status: reply.status, headers: pickHeaders(reply.headers), body: parseBody(reply.text, reply.headers['content-type']) };
    if (!expected(reply.status)) {
      throw new ActionError(`${input.method} ${reply.url} answered ${reply.status}${snippet(reply.text)}`, {
        retryable: isRetryableStatus(reply.status),
        details: output,
      });
    }
    return done(output);
  },
});

function snippet(text: string): string {
  const t = text.trim().replace(/\s+/g, ' ');
  return t === '' ? '' : `: ${t.length > 200 ? `${t.slice(0, 200)}…` : t}`;
}
