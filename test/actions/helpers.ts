import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { ActionContext, ActionDefinition, ActionResult } from '../../src/actions/index.js';
import { parseActionInput } from '../../src/actions/index.js';

export const silentLogger = pino({ level: 'silent' });

export function makeCtx(overrides: Partial<ActionContext> = {}): ActionContext {
  return {
    runId: 'run-1',
    stepId: 'step-1',
    attempt: 1,
    idempotencyKey: 'run-1:step-1:1',
    signal: new AbortController().signal,
    logger: silentLogger,
    httpAllow: ['127.0.0.1'],
    playbooksDir: '/nonexistent',
    state: undefined,
    stepStartedAt: 1_000_000,
    now: () => 1_000_000,
    dryRun: false,
    ...overrides,
  };
}

/** Parse like the engine does, then run one attempt. */
export async function call(def: ActionDefinition | undefined, raw: unknown, ctx: ActionContext): Promise<ActionResult> {
  if (!def) throw new Error('no such action');
  return def.run(parseActionInput(def, raw), ctx);
}

export interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface TestServer {
  url: string;
  port: number;
  requests: Recorded[];
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1:0 that records every request it gets. */
export async function startServer(handler: (req: Recorded, res: ServerResponse) => void): Promise<TestServer> {
  const requests: Recorded[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(rec);
      handler(rec, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
