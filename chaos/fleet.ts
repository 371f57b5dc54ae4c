/**
 * The server processes under test: `node bin/firebreak.js serve` (the built
 * dist/), started the way an operator would, SIGKILLed and started again.
 * Each start is an incarnation; its pid is in the worker ids it writes
 * (`host:pid:uuid`), which ties database rows back to processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { request } from 'undici';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface Incarnation {
  slot: number;
  generation: number;
  pid: number;
  port: number;
  url: string;
  child: ChildProcess;
  startedAt: number;
  readyAt?: number;
  killedAt?: number;
  /** When it was last continued after a SIGSTOP. */
  resumedAt?: number;
  exited: Promise<void>;
  /** Last firebreak_lease_takeovers_total scraped from its /metrics. */
  takeovers: number;
  logFile: string;
}

export interface FleetOptions {
  root: string;
  size: number;
  env: Record<string, string>;
  logDir: string;
  readyTimeoutMs?: number;
}

async function readyz(url: string): Promise<number> {
  const res = await request(`${url}/readyz`, { headersTimeout: 2_000, bodyTimeout: 2_000 });
  await res.body.text();
  return res.statusCode;
}

export class Fleet {
  readonly all: Incarnation[] = [];
  private readonly current = new Map<number, Incarnation>();
  private readonly starting = new Set<number>();
  private readonly logs: WriteStream[] = [];

  constructor(private readonly options: FleetOptions) {}

  /** Incarnations that answered /readyz and were not killed. */
  live(): Incarnation[] {
    return [...this.current.values()].filter((i) => i.readyAt !== undefined && i.killedAt === undefined);
  }

  get restarting(): number {
    return this.starting.size;
  }

  async startAll(): Promise<void> {
    await Promise.all(Array.from({ length: this.options.size }, (_, slot) => this.start(slot)));
  }

  /** Start a process in `slot`, retrying (e.g. while Postgres is down and start-up fails) until ready. */
  async start(slot: number): Promise<Incarnation> {
    this.starting.add(slot);
    try {
      const deadline = Date.now() + (this.options.readyTimeoutMs ?? 90_000);
      let lastError = '';
      while (Date.now() < deadline) {
        const inc = await this.spawnOne(slot);
        const ready = await this.waitReady(inc, deadline);
        if (ready) {
          this.current.set(slot, inc);
          return inc;
        }
        lastError = `incarnation pid ${inc.pid} exited before ready (log ${inc.logFile})`;
        inc.child.kill('SIGKILL');
        await inc.exited;
        await sleep(500);
      }
      throw new Error(`server slot ${slot} not ready in time: ${lastError}`);
    } finally {
      this.starting.delete(slot);
    }
  }

  private async spawnOne(slot: number): Promise<Incarnation> {
    const port = await freePort();
    const generation = this.all.filter((i) => i.slot === slot).length + 1;
    const child = spawn(process.execPath, [join(this.options.root, 'bin', 'firebreak.js'), 'serve'], {
      cwd: this.options.root,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...this.options.env, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const logFile = join(this.options.logDir, `slot${slot}-gen${generation}-pid${child.pid}.log`);
    const log = createWriteStream(logFile);
    this.logs.push(log);
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const inc: Incarnation = { slot, generation, pid: child.pid!, port, url: `http://127.0.0.1:${port}`, child, startedAt: Date.now(), exited, takeovers: 0, logFile };
    this.all.push(inc);
    return inc;
  }

  private async waitReady(inc: Incarnation, deadline: number): Promise<boolean> {
    while (Date.now() < deadline) {
      if (inc.child.exitCode !== null || inc.child.signalCode !== null) return false;
      try {
        if ((await readyz(inc.url)) === 200) {
          inc.readyAt = Date.now();
          return true;
        }
      } catch {
        /* not listening yet */
      }
      await sleep(100);
    }
    return false;
  }

  /** SIGKILL the process in `slot` and wait until it is gone. */
  async kill(inc: Incarnation): Promise<void> {
    inc.killedAt = Date.now();
    if (this.current.get(inc.slot) === inc) this.current.delete(inc.slot);
    inc.child.kill('SIGKILL');
    await inc.exited;
  }

  /**
   * Freeze a process (SIGSTOP) for `ms`, then continue it (SIGCONT); resolves
   * when it serves /readyz again (undefined if it does not within 30 s).
   */
  async pause(inc: Incarnation, ms: number): Promise<number | undefined> {
    inc.child.kill('SIGSTOP');
    await sleep(ms);
    inc.child.kill('SIGCONT');
    inc.resumedAt = Date.now();
    return this.untilReady(inc, 30_000);
  }

  /** Poll /readyz of one incarnation until it answers 200. */
  async untilReady(inc: Incarnation, timeoutMs: number): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      try {
        if ((await readyz(inc.url)) === 200) return Date.now();
      } catch {
        /* down */
      }
      await sleep(100);
    }
    return undefined;
  }

  /** Stop everything this fleet started (SIGTERM, then SIGKILL after a grace period). */
  async stopAll(graceMs = 5_000): Promise<void> {
    const running = this.all.filter((i) => i.child.exitCode === null && i.child.signalCode === null);
    for (const i of running) i.child.kill('SIGTERM');
    await Promise.race([Promise.all(running.map((i) => i.exited)), sleep(graceMs)]);
    for (const i of running) if (i.child.exitCode === null && i.child.signalCode === null) i.child.kill('SIGKILL');
    await Promise.all(running.map((i) => i.exited));
    for (const l of this.logs) l.end();
  }
}
