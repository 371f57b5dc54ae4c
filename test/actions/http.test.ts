import { Agent, getGlobalDispatcher, setGlobalDispatcher, type Dispatcher } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ActionError, StepTimeoutError } from '../../src/errors.js';
import { createActionRegistry, describeCall } from '../../src/actions/index.js';
import { call, json, makeCtx, startServer, type TestServer } from './helpers.js';

const http = createActionRegistry().get('http.request')!;

async function failure(p: Promise<unknown>): Promise<ActionError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ActionError);
  return err as ActionError;
}

// Names under .firebreak.test resolve to 127.0.0.1 so `*.suffix` entries can be tried against a real server.
let previous: Dispatcher;
beforeAll(() => {
  previous = getGlobalDispatcher();
  setGlobalDispatcher(
    new Agent({
      connect: {
        lookup: (hostname: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) => {
          if (!hostname.endsWith('.firebreak.test') && hostname !== 'localhost' && hostname !== '127.0.0.1')
            return cb(Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }));
          if (opts.all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
          else cb(null, '127.0.0.1', 4);
        },
      } as never,
    }),
  );
});
afterAll(() => setGlobalDispatcher(previous));

const servers: TestServer[] = [];
async function server(handler: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handler);
  servers.push(s);
  return s;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('http.request allow list', () => {
  it('calls an allowed host, parses JSON and sends the Idempotency-Key', async () => {
    const s = await server((_req, res) => json(res, 200, { ok: true }));
    const result = await call(http, { url: `${s.url}/x`, headers: { 'idempotency-key': 'forged' } }, makeCtx({ httpAllow: ['127.0.0.1'] }));
    expect(result).toEqual({ kind: 'done', output: { status: 200, headers: expect.objectContaining({ 'content-type': 'application/json' }), body: { ok: true } } });
    expect(s.requests).toHaveLength(1);
    expect(s.requests[0]!.method).toBe('GET');
    expect(s.requests[0]!.headers['idempotency-key']).toBe('run-1:step-1:1');
  });

  it('refuses a host that is not listed, without calling it', async () => {
    const s = await server((_req, res) => json(res, 200, {}));
    const err = await failure(call(http, { url: s.url }, makeCtx({ httpAllow: ['example.com'] })));
    expect(err.message).toMatch(/not in FIREBREAK_HTTP_ALLOW/);
    expect(err.retryable).toBe(false);
    expect(s.requests).toHaveLength(0);
  });

  it('allows nothing with an empty list', async () => {
    const s = await server((_req, res) => json(res, 200, {}));
    await failure(call(http, { url: s.url }, makeCtx({ httpAllow: [] })));
    expect(s.requests).toHaveLength(0);
  });

  it('matches host:port entries on the port', async () => {
    const s = await server((_req, res) => json(res, 200, {}));
    await failure(call(http, { url: s.url }, makeCtx({ httpAllow: [`127.0.0.1:${s.port + 1}`] })));
    expect(s.requests).toHaveLength(0);
    await call(http, { url: s.url }, makeCtx({ httpAllow: [`127.0.0.1:${s.port}`] }));
    expect(s.requests).toHaveLength(1);
  });

  it('matches *.suffix entries against subdomains only, case-insensitively', async () => {
    const s = await server((_req, res) => json(res, 200, {}));
    const ctx = makeCtx({ httpAllow: ['*.Firebreak.Test'] });
    await call(http, { url: `http://API.firebreak.test:${s.port}/` }, ctx);
    expect(s.requests).toHaveLength(1);
    expect(s.requests[0]!.headers.host).toBe(`api.firebreak.test:${s.port}`);
    await failure(call(http, { url: `http://127.0.0.1:${s.port}/` }, ctx));
    expect(s.requests).toHaveLength(1);
  });
});

describe('http.request redirects', () => {
  it('follows allowed redirects, re-sending the same Idempotency-Key', async () => {
    const s = await server((req, res) => {
      if (req.url === '/start') {
        res.writeHead(302, { location: '/final' }).end();
      } else json(res, 200, { at: req.url });
    });
    const result = await call(http, { url: `${s.url}/start` }, makeCtx());
    expect(result).toMatchObject({ kind: 'done', output: { status: 200, body: { at: '/final' } } });
    expect(s.requests.map((r) => r.headers['idempotency-key'])).toEqual(['run-1:step-1:1', 'run-1:step-1:1']);
  });

  it('refuses a redirect to a host outside the allow list', async () => {
    const other = await server((_req, res) => json(res, 200, { leaked: true }));
    const s = await server((_req, res) => res.writeHead(307, { location: `http://localhost:${other.port}/steal` }).end());
    const err = await failure(call(http, { method: 'POST', url: s.url, body: { x: 1 } }, makeCtx({ httpAllow: ['127.0.0.1'] })));
    expect(err.message).toMatch(/host localhost:\d+ is not in FIREBREAK_HTTP_ALLOW/);
    expect(err.retryable).toBe(false);
    expect(s.requests).toHaveLength(1);
    expect(other.requests).toHaveLength(0);
  });

  it('drops Authorization when a redirect changes origin', async () => {
    const other = await server((_req, res) => json(res, 200, {}));
    const s = await server((_req, res) => res.writeHead(302, { location: `http://localhost:${other.port}/` }).end());
    await call(http, { url: s.url, headers: { Authorization: 'Bearer secret' } }, makeCtx({ httpAllow: ['127.0.0.1', 'localhost'] }));
    expect(s.requests[0]!.headers.authorization).toBe('Bearer secret');
    expect(other.requests[0]!.headers.authorization).toBeUndefined();
  });

  it('drops every header the playbook set when a redirect changes origin, and keeps them on the same origin', async () => {
    const other = await server((_req, res) => json(res, 200, {}));
    const s = await server((req, res) => {
      if (req.url === '/same') res.writeHead(302, { location: '/moved' }).end();
      else if (req.url === '/moved') res.writeHead(302, { location: `http://localhost:${other.port}/` }).end();
      else json(res, 200, {});
    });
    const headers = { 'X-Api-Key': 'k3y-value', 'X-Deploy-Token': 'tok', Cookie: 'session=1', 'X-Trace': 'harmless' };
    await call(http, { url: `${s.url}/same`, headers }, makeCtx({ httpAllow: ['127.0.0.1', 'localhost'] }));
    expect(s.requests.map((r) => r.headers['x-api-key'])).toEqual(['k3y-value', 'k3y-value']);
    const leaked = other.requests[0]!.headers;
    expect(leaked['x-api-key']).toBeUndefined();
    expect(leaked['x-deploy-token']).toBeUndefined();
    expect(leaked.cookie).toBeUndefined();
    expect(leaked['x-trace']).toBeUndefined();
    // The engine's key is not the playbook's: the target can still deduplicate the attempt.
    expect(leaked['idempotency-key']).toBe('run-1:step-1:1');
  });

  it('stops after 5 redirects', async () => {
    const s = await server((_req, res) => res.writeHead(302, { location: '/again' }).end());
    const err = await failure(call(http, { url: s.url }, makeCtx()));
    expect(err.message).toMatch(/too many redirects/);
    expect(s.requests).toHaveLength(6);
  });

  it('returns a 3xx as is when expect_status lists it', async () => {
    const s = await server((_req, res) => res.writeHead(302, { location: '/elsewhere' }).end());
    const result = await call(http, { url: s.url, expect_status: [302] }, makeCtx());
    expect(result).toMatchObject({ output: { status: 302, headers: { location: '/elsewhere' } } });
    expect(s.requests).toHaveLength(1);
  });
});

describe('http.request limits and failures', () => {
  it('aborts a response larger than max_response_bytes (streamed, no content-length)', async () => {
    const s = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      for (let i = 0; i < 64; i++) res.write('x'.repeat(1024));
      res.end();
    });
    const err = await failure(call(http, { url: s.url, max_response_bytes: 4096 }, makeCtx()));
    expect(err.message).toMatch(/exceeds max_response_bytes \(4096 bytes\)/);
    expect(err.retryable).toBe(false);
  });

  it('refuses a declared content-length over the cap, and accepts one under it', async () => {
    const s = await server((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('y'.repeat(2000)));
    await failure(call(http, { url: s.url, max_response_bytes: 1999 }, makeCtx()));
    const ok = await call(http, { url: s.url, max_response_bytes: 2000 }, makeCtx());
    expect(ok).toMatchObject({ output: { body: 'y'.repeat(2000) } });
  });

  it("passes the step's abort reason through when ctx.signal fires", async () => {
    const s = await server(() => {}); // never answers
    const ac = new AbortController();
    setTimeout(() => ac.abort(new StepTimeoutError('step-1', 100)), 100);
    const err = await failure(call(http, { url: s.url }, makeCtx({ signal: ac.signal })));
    expect(err).toBeInstanceOf(StepTimeoutError);
    expect(err.retryable).toBe(true);
  });

  it('times out by its own timeout as a retryable error', async () => {
    const s = await server(() => {});
    const err = await failure(call(http, { url: s.url, timeout: '150ms' }, makeCtx()));
    expect(err.message).toMatch(/timed out after 150 ms/);
    expect(err.retryable).toBe(true);
  });

  it.each([
    [503, true],
    [500, true],
    [429, true],
    [408, true],
    [404, false],
    [400, false],
    [409, false],
  ])('status %i is retryable=%s', async (status, retryable) => {
    const s = await server((_req, res) => json(res, status, { error: 'nope' }));
    const err = await failure(call(http, { url: s.url }, makeCtx()));
    expect(err.retryable).toBe(retryable);
    expect(err.message).toContain(String(status));
    expect(err.details).toMatchObject({ status, body: { error: 'nope' } });
  });

  it('treats statuses in expect_status (numbers or classes) as success', async () => {
    const s = await server((_req, res) => json(res, 404, { missing: true }));
    expect(await call(http, { url: s.url, expect_status: [404] }, makeCtx())).toMatchObject({ output: { status: 404 } });
    expect(await call(http, { url: s.url, expect_status: ['4xx'] }, makeCtx())).toMatchObject({ output: { status: 404 } });
  });

  it('treats connection errors as retryable', async () => {
    const s = await server(() => {});
    const url = s.url;
    await s.close();
    const err = await failure(call(http, { url }, makeCtx()));
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/ECONNREFUSED/);
  });
});

describe('http.request bodies, side effects, dry-run description', () => {
  it('sends JSON bodies with a content type, and strings as they are', async () => {
    const s = await server((req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`got ${req.body}`));
    const r1 = await call(http, { method: 'post', url: s.url, body: { service: 'api' } }, makeCtx());
    expect(r1).toMatchObject({ output: { body: 'got {"service":"api"}' } });
    expect(s.requests[0]!.method).toBe('POST');
    expect(s.requests[0]!.headers['content-type']).toBe('application/json');
    await call(http, { method: 'PUT', url: s.url, body: 'raw', headers: { 'content-type': 'text/plain' } }, makeCtx());
    expect(s.requests[1]!).toMatchObject({ method: 'PUT', body: 'raw', headers: { 'content-type': 'text/plain' } });
  });

  it('declares side effects and target', () => {
    const parse = (raw: unknown) => http.input.parse(raw);
    expect(http.sideEffect(parse({ url: 'https://a.example/x' }))).toBe(false);
    expect(http.sideEffect(parse({ method: 'HEAD', url: 'https://a.example/x' }))).toBe(false);
    expect(http.sideEffect(parse({ method: 'POST', url: 'https://a.example/x' }))).toBe(true);
    expect(http.target!(parse({ url: 'https://Deploy.Internal:8443/x' }))).toBe('deploy.internal');
  });

  it('refuses to send a side effect in a dry run, but still gathers with GET', async () => {
    const s = await server((_req, res) => json(res, 200, {}));
    const err = await failure(call(http, { method: 'POST', url: s.url }, makeCtx({ dryRun: true })));
    expect(err.retryable).toBe(false);
    expect(s.requests).toHaveLength(0);
    await call(http, { url: s.url }, makeCtx({ dryRun: true }));
    expect(s.requests).toHaveLength(1);
  });

  it('describes the fully rendered request for a dry run', () => {
    const d = describeCall(http, { method: 'POST', url: 'https://deploy.internal/rollback', headers: { Authorization: 'Bearer t' }, body: { to: 'v1' } }, { idempotencyKey: 'r:s:1' });
    expect(d).toEqual({
      method: 'POST',
      url: 'https://deploy.internal/rollback',
      headers: { Authorization: 'Bearer t', 'content-type': 'application/json', 'Idempotency-Key': 'r:s:1' },
      body: '{"to":"v1"}',
    });
  });
});
