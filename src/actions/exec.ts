import { spawn } from 'node:child_process';
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, sep } from 'node:path';
import { z } from 'zod';
import { ActionError } from '../errors.js';
import { refuseInDryRun } from './dry-run.js';
import { durationSchema, formatDuration } from './duration.js';
import { defineAction, done, type ActionContext } from './types.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const execInput = z.strictObject({
  script: z
    .string()
    .min(1)
    .refine((s) => !isAbsolute(s) && !s.startsWith('\\'), 'must be a path relative to playbooks/scripts, not absolute')
    .refine((s) => !s.split(/[\\/]/).includes('..'), 'must not contain ".."')
    .refine((s) => !s.includes('\0'), 'must not contain NUL'),
  args: z.array(z.string()).default([]),
  env: z
    .record(z.string(), z.string())
    .default({})
    .refine((env) => Object.keys(env).every((k) => ENV_NAME.test(k)), 'names must be letters, digits and _'),
  timeout: durationSchema.default(60_000),
  max_output_bytes: z.number().int().positive().default(256 * 1024),
});

type ExecInput = z.output<typeof execInput>;

export interface ExecOutput {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
}

/** Resolve the script inside `<playbooksDir>/scripts`, following symlinks, and refuse anything that lands outside. */
export async function resolveScript(playbooksDir: string, script: string): Promise<string> {
  let root: string;
  let file: string;
  try {
    root = await realpath(join(playbooksDir, 'scripts'));
  } catch {
    throw new ActionError(`scripts folder ${join(playbooksDir, 'scripts')} does not exist`, { retryable: false });
  }
  try {
    file = await realpath(join(root, script));
  } catch {
    throw new ActionError(`script ${script} not found in ${root}`, { retryable: false });
  }
  if (!file.startsWith(root + sep)) throw new ActionError(`script ${script} resolves outside ${root}`, { retryable: false });
  if (!(await stat(file)).isFile()) throw new ActionError(`script ${script} is not a file`, { retryable: false });
  return file;
}

/** Only these reach the child: the parent's environment holds FIREBREAK_SECRET_* and tokens. */
function childEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', LANG: process.env.LANG ?? 'C.UTF-8' };
  if (process.env.HOME) env.HOME = process.env.HOME;
  return { ...env, ...extra };
}

/** Keeps the first `cap` bytes and drains the rest, so a chatty child never blocks on a full pipe. */
class Capture {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly cap: number) {}
  push(chunk: Buffer): void {
    const room = this.cap - this.size;
    if (chunk.length > room) this.truncated = true;
    if (room <= 0) return;
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(kept);
    this.size += kept.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8') + (this.truncated ? `\n[output truncated at ${this.cap} bytes]` : '');
  }
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is already gone.
  }
}

export async function runScript(input: ExecInput, ctx: ActionContext): Promise<ExecOutput> {
  refuseInDryRun('exec', ctx);
  const file = await resolveScript(ctx.playbooksDir, input.script);
  // Frozen and woken up without the lease: the script must not start (another worker may have run it).
  if (ctx.signal.aborted || ctx.leaseHeld?.() === false) throw abortError(ctx, input.script);
  const stdout = new Capture(input.max_output_bytes);
  const stderr = new Capture(input.max_output_bytes);

  const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; why?: 'timeout' | 'abort' }>((resolve, reject) => {
    // detached: the child leads its own process group, so a kill reaches whatever it started too.
    const child = spawn(file, input.args, {
      shell: false,
      detached: true,
      cwd: join(ctx.playbooksDir, 'scripts'),
      env: childEnv(input.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let why: 'timeout' | 'abort' | undefined;
    const stop = (reason: 'timeout' | 'abort') => {
      why ??= reason;
      killGroup(child.pid);
    };
    const timer = setTimeout(() => stop('timeout'), input.timeout);
    const onAbort = () => stop('abort');
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onAbort);
    };
    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    // Leftover background children would hold the pipes open and outlive the step: end them.
    // Something that left the group (setsid) could still hold them; stop waiting for it after a grace.
    child.on('exit', () => {
      killGroup(child.pid);
      setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
      }, 1_000).unref();
    });
    child.on('error', (err) => {
      cleanup();
      reject(new ActionError(`cannot start script ${input.script}: ${err.message}`, { retryable: false, cause: err }));
    });
    child.on('close', (code, signal) => {
      cleanup();
      resolve({ code, signal, ...(why ? { why } : {}) });
    });
  });

  const output: ExecOutput = { exitCode: result.code, stdout: stdout.text(), stderr: stderr.text(), truncated: stdout.truncated || stderr.truncated };
  if (result.why === 'abort') throw abortError(ctx, input.script);
  if (result.why === 'timeout')
    throw new ActionError(`script ${input.script} timed out after ${formatDuration(input.timeout)} and was killed`, { retryable: true, details: output });
  if (result.code !== 0) {
    const status = result.code === null ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
    const tail = output.stderr.trim().slice(-500);
    throw new ActionError(`script ${input.script} ${status}${tail ? `: ${tail}` : ''}`, { retryable: true, details: output });
  }
  return output;
}

function abortError(ctx: ActionContext, script: string): Error {
  const reason: unknown = ctx.signal.reason;
  return reason instanceof ActionError ? reason : new ActionError(`script ${script} aborted`, { retryable: true, cause: reason });
}

export const execAction = defineAction({
  name: 'exec',
  input: execInput,
  sideEffect: () => true,
  target: (input) => input.script,
  describe: (input) => ({ script: input.script, args: input.args, env: Object.keys(input.env) }),
  async run(input, ctx) {
    return done(await runScript(input, ctx));
  },
});
