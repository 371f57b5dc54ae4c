import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActionError, StepTimeoutError } from '../../src/errors.js';
import { createActionRegistry, describeCall } from '../../src/actions/index.js';
import { call, makeCtx } from './helpers.js';

const exec = createActionRegistry().get('exec')!;
let dir: string;
let outside: string;

async function script(name: string, body: string): Promise<void> {
  await writeFile(join(dir, 'scripts', name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
}

async function failure(p: Promise<unknown>): Promise<ActionError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ActionError);
  return err as ActionError;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'firebreak-exec-'));
  outside = await mkdtemp(join(tmpdir(), 'firebreak-outside-'));
  await mkdir(join(dir, 'scripts', 'db'), { recursive: true });
  // One argument per line, so spaces and metacharacters show up exactly as received.
  await script('args.sh', 'for a in "$@"; do printf "%s\\n" "$a"; done');
  await script('env.sh', 'env | sort');
  await script('fail.sh', 'echo partial; echo "disk full" >&2; exit 3');
  // The background sleeper proves the whole process group is killed, not only the shell.
  await script('hang.sh', 'sleep 30 & echo $! > "$PIDFILE"; sleep 30');
  await script('loud.sh', 'i=0; while [ $i -lt 2000 ]; do echo "0123456789012345678901234567890123456789"; i=$((i+1)); done');
  await script('db/ping.sh', 'echo pong');
  await writeFile(join(outside, 'evil.sh'), '#!/bin/sh\necho escaped\n', { mode: 0o755 });
  await symlink(join(outside, 'evil.sh'), join(dir, 'scripts', 'link.sh'));
  process.env.FIREBREAK_SECRET_X = 'hunter2';
});

afterAll(async () => {
  delete process.env.FIREBREAK_SECRET_X;
  await rm(dir, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

const ctx = (over: Parameters<typeof makeCtx>[0] = {}) => makeCtx({ playbooksDir: dir, ...over });

/** Running, as opposed to gone or a zombie waiting for an init that may not reap it (containers). */
async function running(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

describe('exec', () => {
  it('passes argv literally, with no shell in between', async () => {
    const args = ['two words', '$(touch /tmp/pwned)', '; rm -rf /', '*', "'quoted'", '`id`', '&& echo hi'];
    const r = await call(exec, { script: 'args.sh', args }, ctx());
    expect(r).toEqual({ kind: 'done', output: { exitCode: 0, stdout: args.join('\n') + '\n', stderr: '', truncated: false } });
  });

  it('runs scripts in sub-folders of scripts/', async () => {
    expect(await call(exec, { script: 'db/ping.sh' }, ctx())).toMatchObject({ output: { stdout: 'pong\n' } });
  });

  it('gives the script only PATH, LANG, HOME and the listed env', async () => {
    const r = await call(exec, { script: 'env.sh', env: { SERVICE: 'api', TOKEN: 'given on purpose' } }, ctx());
    const out = (r as { output: { stdout: string } }).output.stdout;
    expect(out).toContain('SERVICE=api\n');
    expect(out).toContain('TOKEN=given on purpose\n');
    expect(out).toContain('PATH=');
    expect(out).not.toContain('FIREBREAK_SECRET_X');
    expect(out).not.toContain('hunter2');
    const names = out
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('=')[0]);
    // sh itself may add PWD/SHLVL/_; nothing else of the parent's may appear.
    expect(names.filter((n) => !['PATH', 'LANG', 'HOME', 'SERVICE', 'TOKEN', 'PWD', 'SHLVL', '_', 'OLDPWD'].includes(n!))).toEqual([]);
  });

  it('makes a non-zero exit a retryable error with the code and stderr tail', async () => {
    const err = await failure(call(exec, { script: 'fail.sh' }, ctx()));
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/exited with code 3: disk full/);
    expect(err.details).toMatchObject({ exitCode: 3, stdout: 'partial\n' });
  });

  it('kills the process group on timeout', async () => {
    const pidfile = join(dir, 'bg.pid');
    const started = Date.now();
    const err = await failure(call(exec, { script: 'hang.sh', timeout: '300ms', env: { PIDFILE: pidfile } }, ctx()));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err.message).toMatch(/timed out after 300ms/);
    expect(err.retryable).toBe(true);
    const bg = Number((await readFile(pidfile, 'utf8')).trim());
    await new Promise((r) => setTimeout(r, 50));
    expect(await running(bg)).toBe(false);
  });

  it("stops on ctx.signal and reports the step's reason", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new StepTimeoutError('step-1', 200)), 200);
    const err = await failure(call(exec, { script: 'hang.sh', env: { PIDFILE: join(dir, 'bg2.pid') } }, ctx({ signal: ac.signal })));
    expect(err).toBeInstanceOf(StepTimeoutError);
  });

  it('caps captured output and says so', async () => {
    const r = await call(exec, { script: 'loud.sh', max_output_bytes: 1000 }, ctx());
    const out = (r as { output: { stdout: string; truncated: boolean } }).output;
    expect(out.truncated).toBe(true);
    expect(out.stdout.startsWith('0123456789')).toBe(true);
    expect(out.stdout).toMatch(/\[output truncated at 1000 bytes\]$/);
    expect(out.stdout.length).toBeLessThan(1100);
  });

  it('refuses paths that escape scripts/', async () => {
    for (const bad of ['/bin/sh', '../x.sh', 'db/../../x.sh']) {
      await expect(call(exec, { script: bad }, ctx())).rejects.toThrow(/with\.script/);
    }
    const err = await failure(call(exec, { script: 'link.sh' }, ctx()));
    expect(err.message).toMatch(/resolves outside/);
    expect(err.retryable).toBe(false);
    const missing = await failure(call(exec, { script: 'nope.sh' }, ctx()));
    expect(missing.message).toMatch(/not found/);
  });

  it('refuses to run in a dry run', async () => {
    const err = await failure(call(exec, { script: 'db/ping.sh' }, ctx({ dryRun: true })));
    expect(err.message).toMatch(/dry run/);
    expect(err.retryable).toBe(false);
  });

  it('is a side effect whose target is the script, described as script and args', () => {
    const input = exec.input.parse({ script: 'db/ping.sh', args: ['a b'], env: { K: 'secret' } });
    expect(exec.sideEffect(input)).toBe(true);
    expect(exec.target!(input)).toBe('db/ping.sh');
    expect(describeCall(exec, { script: 'db/ping.sh', args: ['a b'], env: { K: 'secret' } })).toEqual({ script: 'db/ping.sh', args: ['a b'], env: ['K'] });
  });
});
