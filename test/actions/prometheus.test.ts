import { afterEach, describe, expect, it } from 'vitest';
import { ActionError } from '../../src/errors.js';
import { createActionRegistry } from '../../src/actions/index.js';
import { call, json, makeCtx, startServer, type TestServer } from './helpers.js';

const registry = createActionRegistry();
const query = registry.get('prometheus.query')!;
const wait = registry.get('prometheus.wait')!;

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A local server answering /api/v1/query the way Prometheus does; `answer` picks the data per call. */
async function prometheus(answer: (q: URLSearchParams, n: number) => { status?: number; body: unknown }): Promise<TestServer> {
  let n = 0;
  const s = await startServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (!url.pathname.endsWith('/api/v1/query')) return json(res, 404, { status: 'error', error: 'not found' });
    const a = answer(url.searchParams, ++n);
    json(res, a.status ?? 200, a.body);
  });
  servers.push(s);
  return s;
}

const vector = (...values: Array<[Record<string, string>, string]>) => ({
  status: 'success',
  data: { resultType: 'vector', result: values.map(([metric, v]) => ({ metric, value: [1_700_000_000.123, v] })) },
});

describe('prometheus.query', () => {
  it('returns a vector with the first sample as value', async () => {
    const s = await prometheus(() => ({ body: vector([{ service: 'api' }, '0.07'], [{ service: 'web' }, '0.01']) }));
    const result = await call(query, { url: s.url, query: 'sum by (service) (rate(x[5m]))', time: '2024-01-01T00:00:00Z' }, makeCtx());
    expect(result).toEqual({
      kind: 'done',
      output: {
        resultType: 'vector',
        value: 0.07,
        vector: [
          { labels: { service: 'api' }, value: 0.07 },
          { labels: { service: 'web' }, value: 0.01 },
        ],
      },
    });
    const sent = new URL(s.requests[0]!.url, 'http://x');
    expect(sent.searchParams.get('query')).toBe('sum by (service) (rate(x[5m]))');
    expect(sent.searchParams.get('time')).toBe('2024-01-01T00:00:00Z');
  });

  it('returns a scalar', async () => {
    const s = await prometheus(() => ({ body: { status: 'success', data: { resultType: 'scalar', result: [1_700_000_000, '42'] } } }));
    const result = await call(query, { url: s.url, query: 'scalar(up)' }, makeCtx());
    expect(result).toMatchObject({ output: { resultType: 'scalar', value: 42 } });
  });

  it('gives value null for an empty vector', async () => {
    const s = await prometheus(() => ({ body: vector() }));
    expect(await call(query, { url: s.url, query: 'absent_metric' }, makeCtx())).toMatchObject({ output: { value: null, vector: [] } });
  });

  it('keeps a path prefix in the base URL', async () => {
    const s = await prometheus(() => ({ body: vector([{}, '1']) }));
    await call(query, { url: `${s.url}/prometheus/`, query: 'up' }, makeCtx());
    expect(s.requests[0]!.url.startsWith('/prometheus/api/v1/query?')).toBe(true);
  });

  it('reports a bad query as a non-retryable error with the Prometheus message', async () => {
    const s = await prometheus(() => ({ status: 400, body: { status: 'error', errorType: 'bad_data', error: 'parse error at char 4' } }));
    const err = (await call(query, { url: s.url, query: 'up{' }, makeCtx()).catch((e: unknown) => e)) as ActionError;
    expect(err).toBeInstanceOf(ActionError);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/parse error at char 4/);
  });

  it('reports an overloaded Prometheus as retryable', async () => {
    const s = await prometheus(() => ({ status: 503, body: { status: 'error', errorType: 'timeout', error: 'query timed out' } }));
    const err = (await call(query, { url: s.url, query: 'up' }, makeCtx()).catch((e: unknown) => e)) as ActionError;
    expect(err.retryable).toBe(true);
  });

  it('applies the allow list', async () => {
    const s = await prometheus(() => ({ body: vector() }));
    const err = (await call(query, { url: s.url, query: 'up' }, makeCtx({ httpAllow: ['prometheus'] })).catch((e: unknown) => e)) as ActionError;
    expect(err.retryable).toBe(false);
    expect(s.requests).toHaveLength(0);
  });

  it('is not a side effect', () => {
    expect(query.sideEffect(query.input.parse({ url: 'http://p:9090', query: 'up' }))).toBe(false);
    expect(wait.sideEffect(wait.input.parse({ url: 'http://p:9090', query: 'up', until: 'value < 1', timeout: '1m' }))).toBe(false);
  });
});

describe('prometheus.wait', () => {
  const start = 1_000_000;

  it('polls until the condition holds, carrying its state', async () => {
    const values = ['0.2', '0.05', '0.005'];
    const s = await prometheus((_q, n) => ({ body: vector([{}, values[n - 1]!]) }));
    const input = { url: s.url, query: 'err_rate', until: 'value < 0.01', interval: '30s', timeout: '10m' };
    let state: unknown;
    const results = [];
    for (let i = 0; i < 3; i++) {
      const r = await call(wait, input, makeCtx({ state, stepStartedAt: start, now: () => start + i * 30_000 }));
      results.push(r);
      if (r.kind === 'poll') state = r.state;
    }
    expect(results[0]).toEqual({ kind: 'poll', afterMs: 30_000, state: { polls: 1, lastValue: 0.2 }, progress: 'value=0.2 (poll 1)' });
    expect(results[1]).toEqual({ kind: 'poll', afterMs: 30_000, state: { polls: 2, lastValue: 0.05 }, progress: 'value=0.05 (poll 2)' });
    expect(results[2]).toMatchObject({ kind: 'done', output: { resultType: 'vector', value: 0.005 } });
    expect(s.requests).toHaveLength(3);
  });

  it('can look at the whole vector', async () => {
    const s = await prometheus(() => ({ body: vector([{ pod: 'a' }, '1'], [{ pod: 'b' }, '1']) }));
    const r = await call(wait, { url: s.url, query: 'up', until: 'size(vector) == 2 && vector.all(s, s.value == 1.0)', timeout: '1m' }, makeCtx());
    expect(r.kind).toBe('done');
  });

  it('treats an empty result as "not yet" and uses the 15s default interval', async () => {
    const s = await prometheus(() => ({ body: vector() }));
    const r = await call(wait, { url: s.url, query: 'up', until: 'value < 0.01', timeout: '10m' }, makeCtx());
    expect(r).toEqual({ kind: 'poll', afterMs: 15_000, state: { polls: 1, lastValue: null }, progress: 'value=null (poll 1)' });
  });

  it('fails, not retryable, once the timeout has passed', async () => {
    const s = await prometheus(() => ({ body: vector([{}, '0.3']) }));
    const input = { url: s.url, query: 'err_rate', until: 'value < 0.01', interval: '1m', timeout: '10m' };
    const early = await call(wait, input, makeCtx({ state: { polls: 4, lastValue: 0.3 }, now: () => start + 9.5 * 60_000 }));
    // The next poll lands on the deadline rather than past it.
    expect(early).toMatchObject({ kind: 'poll', afterMs: 30_000, state: { polls: 5 } });
    const err = (await call(wait, input, makeCtx({ state: { polls: 5, lastValue: 0.3 }, now: () => start + 10 * 60_000 })).catch((e: unknown) => e)) as ActionError;
    expect(err).toBeInstanceOf(ActionError);
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/condition "value < 0.01" not met within 10m/);
  });

  it('refuses a condition that is not a bool', async () => {
    const s = await prometheus(() => ({ body: vector([{}, '1']) }));
    const err = (await call(wait, { url: s.url, query: 'up', until: 'value + 1.0', timeout: '1m' }, makeCtx()).catch((e: unknown) => e)) as ActionError;
    expect(err).toBeInstanceOf(ActionError);
    expect(err.retryable).toBe(false);
  });
});
