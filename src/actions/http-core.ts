import { request } from 'undici';
import { ActionError } from '../errors.js';
import { isHostAllowed, urlHostPort } from './allow.js';
import type { ActionContext } from './types.js';

export interface HttpCall {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string | undefined;
  timeoutMs: number;
  maxBytes: number;
  /** Statuses the caller wants to see rather than follow (a playbook that expects a 302). */
  keepStatuses?: (status: number) => boolean;
}

export interface HttpReply {
  status: number;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const IDEMPOTENCY_KEY = 'idempotency-key';

export function parseTargetUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ActionError(`invalid URL ${JSON.stringify(raw)}`, { retryable: false });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ActionError(`URL scheme ${url.protocol} not allowed (http or https only)`, { retryable: false });
  return url;
}

export function assertAllowed(url: URL, allow: readonly string[]): void {
  if (!isHostAllowed(urlHostPort(url), allow))
    throw new ActionError(`host ${url.host} is not in FIREBREAK_HTTP_ALLOW`, {
      retryable: false,
      details: { host: url.host, allow: [...allow] },
    });
}

/** Turn whatever an aborted/failed undici call threw into an ActionError the engine can classify. */
function classify(err: unknown, url: URL, ctx: ActionContext, timeout: AbortSignal, timeoutMs: number): Error {
  if (err instanceof ActionError) return err;
  // The step's own signal carries the engine's reason (StepTimeoutError, run abort): pass it through.
  if (ctx.signal.aborted) {
    const reason: unknown = ctx.signal.reason;
    return reason instanceof ActionError ? reason : new ActionError(`request to ${url.host} aborted`, { retryable: true, cause: err });
  }
  if (timeout.aborted) return new ActionError(`request to ${url.host} timed out after ${timeoutMs} ms`, { retryable: true, cause: err });
  const e = err as { code?: string; message?: string };
  return new ActionError(`request to ${url.host} failed: ${e.code ?? ''} ${e.message ?? String(err)}`.replace(/\s+/g, ' '), {
    retryable: true,
    cause: err,
  });
}

function withoutHeaders(headers: Record<string, string>, drop: (name: string) => boolean): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !drop(k.toLowerCase())));
}

/**
 * One HTTP exchange under the allow list: redirects are followed here (not by
 * undici) so every hop is checked, the body is read under a byte cap, and the
 * step's signal plus a per-request timeout bound the whole call.
 * Status codes are not judged here; callers decide what a status means.
 */
export async function httpCall(call: HttpCall, ctx: ActionContext): Promise<HttpReply> {
  let url = parseTargetUrl(call.url);
  let { method, body } = call;
  // Set last and case-insensitively, so a playbook header cannot replace the engine's key.
  let headers: Record<string, string> = { ...withoutHeaders(call.headers, (k) => k === IDEMPOTENCY_KEY), 'Idempotency-Key': ctx.idempotencyKey };
  const timeout = AbortSignal.timeout(call.timeoutMs);
  const signal = AbortSignal.any([ctx.signal, timeout]);

  for (let hop = 0; ; hop++) {
    assertAllowed(url, ctx.httpAllow);
    try {
      const res = await request(url, { method: method as 'GET', headers, body, signal });
      const location = res.headers.location;
      if (REDIRECTS.has(res.statusCode) && typeof location === 'string' && !call.keepStatuses?.(res.statusCode)) {
        await res.body.dump();
        if (hop >= MAX_REDIRECTS) throw new ActionError(`too many redirects (more than ${MAX_REDIRECTS}) from ${call.url}`, { retryable: false });
        const next = parseTargetUrl(new URL(location, url).toString());
        ctx.logger.debug({ from: url.toString(), to: next.toString(), status: res.statusCode }, 'following redirect');
        // The playbook's headers were written for one origin: any of them (X-Api-Key, a token
        // under a custom name) may be a credential, so another origin gets none of them.
        if (next.origin !== url.origin) headers = withoutHeaders(headers, (k) => k !== IDEMPOTENCY_KEY);
        // Browsers' rule: 303 always, and 301/302 after a POST, continue as a bodiless GET.
        if (res.statusCode === 303 || ((res.statusCode === 301 || res.statusCode === 302) && method === 'POST')) {
          if (method !== 'HEAD') method = 'GET';
          body = undefined;
          headers = withoutHeaders(headers, (k) => k === 'content-type' || k === 'content-length');
        }
        url = next;
        continue;
      }
      const text = await readCapped(res, call.maxBytes, url);
      return { status: res.statusCode, url: url.toString(), headers: res.headers, text };
    } catch (err) {
      throw classify(err, url, ctx, timeout, call.timeoutMs);
    }
  }
}

async function readCapped(res: Awaited<ReturnType<typeof request>>, maxBytes: number, url: URL): Promise<string> {
  const tooBig = () =>
    new ActionError(`response from ${url.host} exceeds max_response_bytes (${maxBytes} bytes)`, {
      retryable: false,
      details: { maxBytes },
    });
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    res.body.destroy();
    throw tooBig();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      // Stop reading: destroying the body closes the connection instead of downloading the rest.
      res.body.destroy();
      throw tooBig();
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Statuses worth another attempt: server errors, request timeout, rate limiting. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

export function isJsonContentType(value: unknown): boolean {
  return typeof value === 'string' && /^application\/([\w.+-]*\+)?json\b/i.test(value.trim());
}
