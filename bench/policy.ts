/**
 * firebreak/decision in process: evaluations/s and p99 latency through the
 * PolicyGate (canonical JSON + input hash + wasm + zod validation) against
 * bare opa-wasm `policy.evaluate()` on the same bundle. Target: p99 < 1 ms.
 */
import { resolve } from 'node:path';
import { loadPolicy } from '@open-policy-agent/opa-wasm';
import pino from 'pino';
import { customBuiltins } from '../src/policy/builtins.js';
import { BUNDLE_FILE, readBundleFile } from '../src/policy/bundle.js';
import { createPolicyGate, type DecisionInput } from '../src/policy/index.js';

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  bare?: number;
  ratio?: number;
  note?: string;
}

/** A realistic question: a high-impact rollback with some history, during no freeze. */
function sampleInput(): DecisionInput {
  const now = Date.parse('2026-11-02T10:00:00Z');
  return {
    playbook: { name: 'high-error-rate', description: 'Roll back a service whose 5xx rate is high' },
    step: {
      id: 'rollback', action: 'http.request', impact: 'high', approval: 'policy', target: 'deploy.internal',
      params: { method: 'POST', url: 'https://deploy.internal/api/services/api/rollback', headers: { Authorization: '[redacted]' } },
    },
    alert: {
      source: 'alertmanager', fingerprint: 'c0ffee', status: 'firing', severity: 'critical', summary: 'High 5xx rate on api',
      labels: { alertname: 'HighErrorRate', service: 'api', severity: 'critical', cluster: 'prod-eu-1' },
      annotations: { summary: 'High 5xx rate on api', runbook: 'https://runbooks.internal/api' },
      startsAt: '2026-11-02T09:55:00Z', endsAt: null, generatorURL: 'http://prometheus:9090/graph',
    },
    run: { id: '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', trigger: 'alert', started_by: null, dry_run: false },
    history: [10, 40, 90].map((m, i) => ({
      run_id: `run-${i}`, playbook: 'high-error-rate', step_id: 'rollback', action: 'http.request', target: 'deploy.internal',
      status: 'succeeded', at: new Date(now - m * 60_000).toISOString(), impact: 'high' as const,
    })),
    now: new Date(now).toISOString(),
  };
}

async function measure(iterations: number, call: () => unknown): Promise<{ perSecond: number; p50: number; p99: number }> {
  const lat = new Float64Array(iterations);
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    await call();
    lat[i] = Number(process.hrtime.bigint() - t0) / 1e6;
  }
  const totalS = Number(process.hrtime.bigint() - start) / 1e9;
  lat.sort();
  return { perSecond: iterations / totalS, p50: lat[Math.floor(iterations * 0.5)]!, p99: lat[Math.floor(iterations * 0.99)]! };
}

export async function benchPolicy(): Promise<BenchResult[]> {
  const dir = resolve(process.env.FIREBREAK_POLICIES ?? 'policies');
  const gate = await createPolicyGate({ dir, logger: pino({ level: 'silent' }), watch: false });
  if (!gate.status().ready) throw new Error(`policy bench: ${gate.status().reason}`);
  const files = await readBundleFile(resolve(dir, BUNDLE_FILE));
  const bare = await loadPolicy(files.wasm, undefined, customBuiltins);
  bare.setData(files.data);

  const input = sampleInput();
  const first = await gate.decide(input);
  if (first.error || !first.result.allow) throw new Error(`policy bench: unexpected decision ${JSON.stringify(first)}`);
  const viaGate = () => gate.decide(input);
  const viaBare = () => bare.evaluate(input, 'firebreak/decision');

  // Warm up both (JIT, wasm tiering, memory growth), then alternate rounds so drift hits both alike.
  await measure(3000, viaGate);
  await measure(3000, viaBare);
  const rounds = 5;
  const per = 4000;
  const g: Array<Awaited<ReturnType<typeof measure>>> = [];
  const b: Array<Awaited<ReturnType<typeof measure>>> = [];
  for (let r = 0; r < rounds; r++) {
    g.push(await measure(per, viaGate));
    b.push(await measure(per, viaBare));
  }
  await gate.close();

  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const gRate = median(g.map((m) => m.perSecond));
  const bRate = median(b.map((m) => m.perSecond));
  const gP99 = median(g.map((m) => m.p99));
  const bP99 = median(b.map((m) => m.p99));
  const gP50 = median(g.map((m) => m.p50));
  const bP50 = median(b.map((m) => m.p50));
  const round = (n: number, d = 4) => Number(n.toFixed(d));
  const note = `${rounds}x${per} evaluations each, median of rounds; gate = canonical JSON + sha256 input hash + wasm + zod; bare = opa-wasm evaluate()`;
  return [
    { name: 'policy decision throughput', value: Math.round(gRate), unit: 'evals/s', bare: Math.round(bRate), ratio: round(gRate / bRate, 3), note },
    { name: 'policy decision p50', value: round(gP50), unit: 'ms', bare: round(bP50), ratio: round(gP50 / bP50, 3) },
    { name: 'policy decision p99', value: round(gP99), unit: 'ms', bare: round(bP99), ratio: round(gP99 / bP99, 3), note: 'target: p99 < 1 ms in process' },
  ];
}
