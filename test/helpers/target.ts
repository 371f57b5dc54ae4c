/** A local HTTP server that playbook steps call; it counts every request and can be told how to answer. */
import { createServer, type IncomingMessage, type Server } from 'node:http';

export interface RecordedCall {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
  /** When the caller gave up on the request (closed it) before it was answered. */
  closedAt?: number;
}

export interface Target {
  url: string;
  host: string;
  calls: RecordedCall[];
  /** Calls per path. */
  count(path: string): number;
  /** Answer this path with a status (and body) from now on; a function decides per call. */
  respond(path: string, answer: { status: number; body?: unknown; delayMs?: number } | ((call: RecordedCall, n: number) => { status: number; body?: unknown; delayMs?: number })): void;
  /** Hold every answer on this path until the returned function is called (no timing involved). */
  hold(path: string): () => void;
  close(): Promise<void>;
}

export async function startTarget(): Promise<Target> {
  const calls: RecordedCall[] = [];
  const answers = new Map<string, Parameters<Target['respond']>[1]>();
  const gates = new Map<string, Promise<void>>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!;
      const call: RecordedCall = { method: req.method ?? 'GET', path, headers: req.headers, body, at: Date.now() };
      calls.push(call);
      res.on('close', () => {
        if (!res.writableEnded) call.closedAt = Date.now();
      });
      const n = calls.filter((c) => c.path === path).length;
      const rule = answers.get(path);
      const answer = typeof rule === 'function' ? rule(call, n) : (rule ?? { status: 200, body: { ok: true } });
      const send = () =>
        setTimeout(() => {
          if (res.destroyed) return;
          res.writeHead(answer.status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(answer.body ?? {}));
        }, answer.delayMs ?? 0);
      const gate = gates.get(path);
      if (gate) void gate.then(send);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    calls,
    count: (path) => calls.filter((c) => c.path === path).length,
    respond: (path, answer) => void answers.set(path, answer),
    hold: (path) => {
      let release!: () => void;
      gates.set(path, new Promise<void>((resolve) => (release = resolve)));
      return () => {
        gates.delete(path);
        release();
      };
    },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
