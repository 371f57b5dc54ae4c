/**
 * The load generator, in its own thread so building payloads and reading
 * responses does not run on the app's event loop. `connections` request
 * loops, each with one request in flight, over an undici Pool of as many
 * keep-alive connections (no pipelining: Alertmanager sends one at a time per
 * connection). A warm-up is discarded; the measured window counts requests
 * started in it, and ends when the last of them completes.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'undici';
import { payloadFactory, type Variant } from './alerts.js';

export interface LoadRequest {
  origin: string;
  path: string;
  connections: number;
  warmupMs: number;
  durationMs: number;
  variant: Variant;
  prefix: string;
}

export interface LoadResult {
  /** Measured window only. */
  accepted: number;
  otherStatus: Record<string, number>;
  errors: number;
  windowS: number;
  latenciesMs: number[];
  /** Whole run, warm-up included: for checking every 202 was stored. */
  total202: number;
  totalFresh202: number;
  sampleBytes: number;
}

async function run(req: LoadRequest): Promise<LoadResult> {
  const pool = new Pool(req.origin, { connections: req.connections, pipelining: 1, keepAliveTimeout: 30_000 });
  const next = payloadFactory(req.variant, req.prefix);
  const start = performance.now();
  const measureFrom = start + req.warmupMs;
  const stopAt = measureFrom + req.durationMs;
  const latencies: number[] = [];
  const otherStatus: Record<string, number> = {};
  let accepted = 0;
  let errors = 0;
  let total202 = 0;
  let totalFresh202 = 0;
  let lastDone = measureFrom;
  const sampleBytes = Buffer.byteLength(payloadFactory(req.variant, 'sample')().body);

  const loop = async () => {
    while (performance.now() < stopAt) {
      const { body, fresh } = next();
      const t0 = performance.now();
      const measured = t0 >= measureFrom;
      try {
        const res = await pool.request({ path: req.path, method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await res.body.dump();
        const t1 = performance.now();
        if (res.statusCode === 202) {
          total202 += 1;
          if (fresh) totalFresh202 += 1;
        }
        if (!measured) continue;
        lastDone = Math.max(lastDone, t1);
        if (res.statusCode === 202) {
          accepted += 1;
          latencies.push(t1 - t0);
        } else otherStatus[res.statusCode] = (otherStatus[res.statusCode] ?? 0) + 1;
      } catch {
        if (measured) errors += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: req.connections }, loop));
  await pool.close();
  return { accepted, otherStatus, errors, windowS: (lastDone - measureFrom) / 1000, latenciesMs: latencies, total202, totalFresh202, sampleBytes };
}

if (parentPort && workerData) {
  run(workerData as LoadRequest).then(
    (result) => parentPort!.postMessage({ ok: true, result }),
    (err: Error) => parentPort!.postMessage({ ok: false, error: err.stack ?? err.message }),
  );
}
