/**
 * The counting target that chaos playbooks call: every request is recorded
 * with its Idempotency-Key and arrival time, and answered by the mode in its
 * path (`/<playbook>/<step>/<mode>`): `ok`, `slow` (long enough to be cut by a
 * SIGKILL), `flaky` (503 now and then on early attempts, so retries happen),
 * `hang` (sometimes longer than the step's timeout) and `fail` (always 400:
 * the run fails and compensates). Answers depend only
 * on the seed, the key and how often that key was seen, not on timing.
 */
import { createServer, type Server } from 'node:http';
import { hash01 } from './rng.js';

export type TargetMode = 'ok' | 'slow' | 'flaky' | 'hang' | 'fail';

export interface TargetCall {
  path: string;
  playbook: string;
  step: string;
  mode: string;
  method: string;
  /** Idempotency-Key header as received (undefined when missing). */
  key: string | undefined;
  /** When the caller closed the request before it was answered (cut short: a kill, a lost lease). */
  closedAt?: number;
  /** How many times this key had been seen, this call included. */
  nth: number;
  /** Arrival (request headers read), ms since the epoch. */
  at: number;
  status: number;
}

export interface Target {
  url: string;
  hostPort: string;
  calls: TargetCall[];
  close(): Promise<void>;
}

/** 503 this often on attempts 1 and 2 of a `flaky` step (attempt 3 always succeeds). */
export const FLAKY_RATE = 0.3;
/** How often attempt 1 of a `hang` step outlives its 1 s timeout. */
export const HANG_RATE = 0.15;
export const HANG_MS = 1_500;

function attemptOf(key: string | undefined): number {
  const n = Number(key?.split(':').at(-1));
  return Number.isInteger(n) ? n : 1;
}

export function answer(seed: number, mode: string, key: string | undefined, nth: number): { status: number; delayMs: number } {
  const r = (salt: string) => hash01(seed, salt, key ?? 'no-key', nth);
  const attempt = attemptOf(key);
  const quick = Math.floor(r('delay') * 40);
  switch (mode) {
    case 'slow':
      return { status: 200, delayMs: 100 + Math.floor(r('slow') * 600) };
    case 'flaky':
      return { status: attempt < 3 && r('flaky') < FLAKY_RATE ? 503 : 200, delayMs: quick };
    case 'hang':
      return { status: 200, delayMs: attempt === 1 && r('hang') < HANG_RATE ? HANG_MS : quick };
    case 'fail':
      return { status: 400, delayMs: quick };
    default:
      return { status: 200, delayMs: quick };
  }
}

export async function startTarget(seed: number): Promise<Target> {
  const calls: TargetCall[] = [];
  const seen = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const at = Date.now();
    const path = (req.url ?? '/').split('?')[0]!;
    const [, playbook = '', step = '', mode = 'ok'] = path.split('/');
    const header = req.headers['idempotency-key'];
    const key = Array.isArray(header) ? header[0] : header;
    const seenKey = key ?? `missing:${path}`;
    const nth = (seen.get(seenKey) ?? 0) + 1;
    seen.set(seenKey, nth);
    const { status, delayMs } = answer(seed, mode, key, nth);
    const call: TargetCall = { path, playbook, step, mode, method: req.method ?? 'GET', key, nth, at, status };
    calls.push(call);
    res.on('close', () => {
      if (!res.writableEnded) call.closedAt = Date.now();
    });
    req.resume();
    req.on('end', () => {
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(status === 200 ? { ok: true, key, nth } : { error: 'try again later' }));
      }, delayMs);
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    hostPort: `127.0.0.1:${port}`,
    calls,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
