import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ValidationError } from '../../src/errors.js';
import {
  builtinActions,
  createActionRegistry,
  defineAction,
  describeCall,
  done,
  loadCustomActions,
  parseActionInput,
  type ActionDefinition,
} from '../../src/actions/index.js';

const BUILTINS = ['exec', 'http.request', 'note', 'prometheus.query', 'prometheus.wait', 'slack.message', 'wait'];

function problems(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

describe('registry', () => {
  const custom = defineAction({
    name: 'team.restart',
    input: z.strictObject({ service: z.string() }),
    sideEffect: () => true,
    run: async (input) => done({ restarted: input.service }),
  });

  it('holds the built-ins and custom actions', () => {
    expect(builtinActions.map((a) => a.name).sort()).toEqual(BUILTINS);
    const registry = createActionRegistry([custom as ActionDefinition]);
    expect(registry.names()).toEqual([...BUILTINS, 'team.restart'].sort());
    expect(registry.has('team.restart')).toBe(true);
    expect(registry.get('http.request')?.name).toBe('http.request');
    expect(registry.get('nope')).toBeUndefined();
    // A read-only Map, so it doubles as the playbook checker's action catalog.
    expect(registry).toBeInstanceOf(Map);
    expect(registry.get('team.restart')?.input).toBeDefined();
  });

  it('rejects duplicate names, including shadowing a built-in', () => {
    expect(() => createActionRegistry([custom, custom] as ActionDefinition[])).toThrow(/team.restart is defined twice/);
    expect(() => createActionRegistry([{ ...custom, name: 'exec' } as ActionDefinition])).toThrow(/exec is defined twice/);
  });

  it('describes a custom action without describe() by its parsed input', () => {
    expect(describeCall(custom as ActionDefinition, { service: 'api' })).toEqual({ action: 'team.restart', input: { service: 'api' } });
  });
});

describe('strict input schemas', () => {
  const registry = createActionRegistry();
  const get = (name: string) => registry.get(name)!;

  it('names an unknown field', () => {
    const err = problems(() => parseActionInput(get('http.request'), { url: 'https://a.example', methd: 'POST' }));
    expect(err.details).toEqual([{ path: 'with.methd', message: expect.stringMatching(/unknown field \(http.request accepts: method, url,/) }]);
    expect(err.message).toMatch(/with\.methd/);
  });

  it.each([
    ['http.request', { url: 'ftp://a.example' }, 'with.url'],
    ['http.request', { url: 'https://a.example', method: 'FETCH' }, 'with.method'],
    ['http.request', { url: 'https://a.example', timeout: 'soon' }, 'with.timeout'],
    ['http.request', { url: 'https://a.example', body: 'x' }, 'with.body'],
    ['http.request', { url: 'https://a.example', expect_status: [99] }, 'with.expect_status.0'],
    ['http.request', { url: 'https://a.example', headers: { a: true } }, 'with.headers.a'],
    ['prometheus.query', { url: 'http://p:9090' }, 'with.query'],
    ['prometheus.wait', { url: 'http://p:9090', query: 'up', until: 'value > 1' }, 'with.timeout'],
    ['prometheus.wait', { url: 'http://p:9090', query: 'up', until: 'value > 1', timeout: '1m', every: '5s' }, 'with.every'],
    ['wait', { duration: '5 minutes' }, 'with.duration'],
    ['wait', {}, 'with.duration'],
    ['note', { text: 1 }, 'with.text'],
    ['slack.message', { text: 'hi', chanel: '#x' }, 'with.chanel'],
    ['exec', { script: 'x.sh', args: 'a b' }, 'with.args'],
    ['exec', { script: 'x.sh', env: { 'BAD-NAME': 'v' } }, 'with.env'],
    ['exec', { script: '../x.sh' }, 'with.script'],
  ])('%s %j -> %s', (action, input, path) => {
    const err = problems(() => parseActionInput(get(action), input));
    expect(err.details.map((d) => d.path)).toContain(path);
  });

  it('fills defaults', () => {
    expect(parseActionInput(get('http.request'), { url: 'https://a.example' })).toMatchObject({ method: 'GET', timeout: 30_000, max_response_bytes: 1024 * 1024 });
    expect(parseActionInput(get('exec'), { script: 'x.sh' })).toMatchObject({ args: [], env: {}, timeout: 60_000, max_output_bytes: 256 * 1024 });
    expect(parseActionInput(get('prometheus.wait'), { url: 'http://p', query: 'up', until: 'true', timeout: '10m' })).toMatchObject({ interval: 15_000, timeout: 600_000 });
  });
});

describe('loadCustomActions', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'firebreak-custom-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('imports .js and .mjs modules whose default export is an action', async () => {
    const good = join(dir, 'good');
    await mkdir(good);
    const zodUrl = import.meta.resolve('zod');
    await writeFile(
      join(good, 'restart.mjs'),
      `import { z } from ${JSON.stringify(zodUrl)};
       export default { name: 'team.restart', input: z.strictObject({ service: z.string() }), sideEffect: () => true,
         run: async (i) => ({ kind: 'done', output: { restarted: i.service } }) };`,
    );
    await writeFile(join(good, 'ping.js'), `export default { name: 'team.ping', input: { safeParse: (v) => ({ success: true, data: v }) }, sideEffect: () => false, run: async () => ({ kind: 'done', output: 'pong' }) };`);
    await writeFile(join(good, 'README.md'), 'not a module');
    const defs = await loadCustomActions(good);
    expect(defs.map((d) => d.name)).toEqual(['team.ping', 'team.restart']);
    const registry = createActionRegistry(defs);
    const restart = registry.get('team.restart')!;
    expect(await restart.run(parseActionInput(restart, { service: 'api' }), {} as never)).toEqual({ kind: 'done', output: { restarted: 'api' } });
    expect(() => parseActionInput(restart, { service: 'api', extra: 1 })).toThrow(/with\.extra/);
  });

  it('names the file of a module that is not an action', async () => {
    const bad = join(dir, 'bad');
    await mkdir(bad);
    await writeFile(join(bad, 'broken.mjs'), `export default { name: 'Bad Name', run: 1 };`);
    await writeFile(join(bad, 'syntax.mjs'), `export default {`);
    const err = await loadCustomActions(bad).then(
      () => undefined,
      (e: unknown) => e as ValidationError,
    );
    expect(err).toBeInstanceOf(ValidationError);
    const paths = err!.details.map((d) => d.path.split('/').pop());
    expect(paths).toContain('broken.mjs');
    expect(paths).toContain('syntax.mjs');
    expect(err!.details.map((d) => d.message).join('\n')).toMatch(/name must be|input must be a zod schema|run must be a function/);
  });

  it('treats a missing folder as no custom actions', async () => {
    expect(await loadCustomActions(join(dir, 'absent'))).toEqual([]);
  });
});
