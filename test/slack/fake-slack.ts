/**
 * A local stand-in for Slack: the Web API methods Firebreak uses (auth.test,
 * chat.postMessage, chat.update, chat.postEphemeral, apps.connections.open)
 * over HTTP, and the Socket Mode WebSocket that apps.connections.open points
 * at. It records every call, keeps the messages (with their threads and
 * edits), and can be told to answer 429 or 500.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';

export interface SlackCall {
  method: string;
  params: Record<string, any>;
  token: string | undefined;
  status: number;
  ok: boolean;
  at: number;
}

export interface FakeMessage {
  channel: string;
  ts: string;
  text: string;
  blocks: any[] | undefined;
  threadTs: string | undefined;
  broadcast: boolean;
  /** Earlier versions, oldest first (chat.update). */
  history: Array<{ text: string; blocks: any[] | undefined }>;
}

export type Answer = { status: 429; retryAfter?: number } | { status: 500 | 502 | 503 } | { error: string };
type Rule = (method: string, params: Record<string, any>) => Answer | undefined;

export interface Envelope {
  envelope_id: string;
  payload?: any;
}

export interface FakeSlack {
  /** Base URL for SLACK_API_URL (ends with /api/). */
  apiUrl: string;
  calls: SlackCall[];
  messages: FakeMessage[];
  ephemerals: Array<{ channel: string; user: string; text: string; threadTs?: string }>;
  /** Channel id Slack would give a channel name ('#inc-x' -> 'C...'). */
  channelId(name: string): string;
  /** Decide answers per call: return an Answer to fail it, undefined to serve it. */
  setRule(rule: Rule | undefined): void;
  /** Successful calls of a method. */
  ok(method: string): SlackCall[];
  /** Top-level messages (no thread_ts) in a channel. */
  roots(channel?: string): FakeMessage[];
  /** Replies in the thread of a root message, in posting order. */
  thread(rootTs: string): FakeMessage[];
  /** Messages whose blocks hold an approval button with this value. */
  approvalMessages(approvalId?: string): FakeMessage[];
  /** Socket Mode: connections currently open. */
  sockets(): number;
  /** Socket Mode: send an envelope to the connected app and wait for its ack. */
  sendEnvelope(type: string, payload: unknown, options?: { timeoutMs?: number }): Promise<Envelope>;
  close(): Promise<void>;
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function parseForm(body: string, contentType: string | undefined): Record<string, any> {
  if ((contentType ?? '').includes('application/json')) return body ? JSON.parse(body) : {};
  const out: Record<string, any> = {};
  for (const [k, v] of new URLSearchParams(body)) {
    if ((k === 'blocks' || k === 'attachments') && v.startsWith('[')) out[k] = JSON.parse(v);
    else out[k] = v;
  }
  return out;
}

/** Server -> client frame (unmasked). */
function frame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  let head: Buffer;
  if (len < 126) head = Buffer.from([0x80 | opcode, len]);
  else if (len < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, payload]);
}

class WsConnection {
  private buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  closed = false;

  constructor(
    readonly socket: Duplex,
    private readonly onText: (text: string) => void,
    private readonly onClose: () => void,
  ) {
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('close', () => this.finish());
    socket.on('error', () => this.finish());
  }

  send(text: string): void {
    if (!this.closed) this.socket.write(frame(0x1, Buffer.from(text)));
  }

  close(): void {
    if (this.closed) return;
    this.socket.write(frame(0x8, Buffer.from([0x03, 0xe8])));
    this.socket.end();
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }

  private read(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      if (this.buffer.length < 2) return;
      const b0 = this.buffer[0]!;
      const b1 = this.buffer[1]!;
      let len = b1 & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (this.buffer.length < 4) return;
        len = this.buffer.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (this.buffer.length < 10) return;
        len = Number(this.buffer.readBigUInt64BE(2));
        offset = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const total = offset + (masked ? 4 : 0) + len;
      if (this.buffer.length < total) return;
      const mask = masked ? this.buffer.subarray(offset, offset + 4) : undefined;
      const payload = Buffer.from(this.buffer.subarray(offset + (masked ? 4 : 0), total));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
      this.buffer = this.buffer.subarray(total);
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if (opcode === 0x8) {
        this.close();
        return;
      }
      if (opcode === 0x9) {
        this.socket.write(frame(0xa, payload));
        continue;
      }
      if (opcode === 0xa) continue;
      if (opcode === 0x1 || opcode === 0x0) {
        this.fragments.push(payload);
        if (fin) {
          const text = Buffer.concat(this.fragments).toString('utf8');
          this.fragments = [];
          this.onText(text);
        }
      }
    }
  }
}

export async function startFakeSlack(options: { botToken?: string; appToken?: string } = {}): Promise<FakeSlack> {
  const botToken = options.botToken ?? 'xoxb-test-token';
  const appToken = options.appToken ?? 'xapp-test-token';
  const calls: SlackCall[] = [];
  const messages: FakeMessage[] = [];
  const ephemerals: FakeSlack['ephemerals'] = [];
  const channels = new Map<string, string>();
  let rule: Rule | undefined;
  let tsCounter = 0;
  const connections = new Set<WsConnection>();
  const waiting = new Map<string, (e: Envelope) => void>();
  let envelopeCounter = 0;

  const channelId = (name: string): string => {
    if (/^[CDG][A-Z0-9]{6,}$/.test(name)) return name;
    let id = channels.get(name);
    if (!id) {
      id = `C${createHash('sha1').update(name).digest('hex').slice(0, 9).toUpperCase()}`;
      channels.set(name, id);
    }
    return id;
  };
  const nextTs = () => `${Math.floor(Date.now() / 1000)}.${String(++tsCounter).padStart(6, '0')}`;

  function serve(method: string, params: Record<string, any>, token: string | undefined): { status: number; body: any; headers?: Record<string, string> } {
    const answer = rule?.(method, params);
    if (answer && 'status' in answer) {
      if (answer.status === 429) return { status: 429, body: { ok: false, error: 'ratelimited' }, headers: { 'retry-after': String(answer.retryAfter ?? 1) } };
      return { status: answer.status, body: 'upstream error' };
    }
    if (answer && 'error' in answer) return { status: 200, body: { ok: false, error: answer.error } };
    const wanted = method === 'apps.connections.open' ? appToken : botToken;
    if (token !== wanted) return { status: 200, body: { ok: false, error: token ? 'invalid_auth' : 'not_authed' } };
    switch (method) {
      case 'auth.test':
        return { status: 200, body: { ok: true, url: 'https://fake.slack.test/', team: 'Fake', team_id: 'T0FAKE', user: 'firebreak', user_id: 'UBOT', bot_id: 'BBOT' } };
      case 'chat.postMessage': {
        if (!params.channel) return { status: 200, body: { ok: false, error: 'channel_not_found' } };
        if (!params.text && !params.blocks) return { status: 200, body: { ok: false, error: 'no_text' } };
        const message: FakeMessage = {
          channel: channelId(params.channel),
          ts: nextTs(),
          text: params.text ?? '',
          blocks: params.blocks,
          threadTs: params.thread_ts,
          broadcast: params.reply_broadcast === 'true' || params.reply_broadcast === true,
          history: [],
        };
        messages.push(message);
        return { status: 200, body: { ok: true, channel: message.channel, ts: message.ts, message: { text: message.text, ts: message.ts } } };
      }
      case 'chat.update': {
        const m = messages.find((x) => x.channel === params.channel && x.ts === params.ts);
        if (!m) return { status: 200, body: { ok: false, error: 'message_not_found' } };
        m.history.push({ text: m.text, blocks: m.blocks });
        m.text = params.text ?? m.text;
        m.blocks = params.blocks;
        return { status: 200, body: { ok: true, channel: m.channel, ts: m.ts, text: m.text } };
      }
      case 'chat.postEphemeral':
        ephemerals.push({ channel: channelId(params.channel), user: params.user, text: params.text, ...(params.thread_ts && { threadTs: params.thread_ts }) });
        return { status: 200, body: { ok: true, message_ts: nextTs() } };
      case 'apps.connections.open':
        return { status: 200, body: { ok: true, url: `ws://127.0.0.1:${port}/link/?ticket=fake` } };
      default:
        return { status: 200, body: { ok: false, error: 'unknown_method' } };
    }
  }

  const server: Server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const path = (req.url ?? '/').split('?')[0]!;
      const method = path.replace(/^\/api\//, '');
      let params: Record<string, any> = {};
      try {
        params = parseForm(body, req.headers['content-type']);
      } catch {
        /* recorded as is */
      }
      const auth = req.headers.authorization;
      const token = auth?.startsWith('Bearer ') ? auth.slice(7) : (params.token as string | undefined);
      const out = serve(method, params, token);
      calls.push({ method, params, token, status: out.status, ok: out.status === 200 && out.body?.ok === true, at: Date.now() });
      res.writeHead(out.status, { 'content-type': typeof out.body === 'string' ? 'text/plain' : 'application/json', ...out.headers });
      res.end(typeof out.body === 'string' ? out.body : JSON.stringify(out.body));
    });
  });

  server.on('upgrade', (req, socket) => {
    const key = req.headers['sec-websocket-key'];
    if (!key || !(req.url ?? '').startsWith('/link')) {
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const accept = createHash('sha1').update(`${key}${WS_GUID}`).digest('base64');
    socket.write(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${accept}`, '', ''].join('\r\n'));
    const conn = new WsConnection(
      socket,
      (text) => {
        let msg: Envelope | undefined;
        try {
          msg = JSON.parse(text);
        } catch {
          return;
        }
        if (msg?.envelope_id) waiting.get(msg.envelope_id)?.(msg);
      },
      () => connections.delete(conn),
    );
    connections.add(conn);
    conn.send(JSON.stringify({ type: 'hello', num_connections: connections.size, debug_info: { host: 'fake', approximate_connection_time: 3600 }, connection_info: { app_id: 'A0FAKE' } }));
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;

  return {
    apiUrl: `http://127.0.0.1:${port}/api/`,
    calls,
    messages,
    ephemerals,
    channelId,
    setRule: (r) => void (rule = r),
    ok: (method) => calls.filter((c) => c.method === method && c.ok),
    roots: (channel) => messages.filter((m) => !m.threadTs && (!channel || m.channel === channelId(channel))),
    thread: (rootTs) => messages.filter((m) => m.threadTs === rootTs),
    approvalMessages: (approvalId) =>
      messages.filter((m) => JSON.stringify(m.history[0]?.blocks ?? m.blocks ?? []).includes('firebreak_approve') && (!approvalId || JSON.stringify(m.history[0]?.blocks ?? m.blocks).includes(approvalId))),
    sockets: () => connections.size,
    sendEnvelope(type, payload, opts = {}) {
      const conn = [...connections][0];
      if (!conn) return Promise.reject(new Error('no Socket Mode connection'));
      const id = `env-${++envelopeCounter}`;
      return new Promise<Envelope>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`no ack for envelope ${id} (${type})`));
        }, opts.timeoutMs ?? 5_000);
        waiting.set(id, (e) => {
          clearTimeout(timer);
          waiting.delete(id);
          resolve(e);
        });
        conn.send(JSON.stringify({ envelope_id: id, type, payload, accepts_response_payload: type !== 'events_api', retry_attempt: 0, retry_reason: '' }));
      });
    },
    async close() {
      for (const c of connections) c.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
