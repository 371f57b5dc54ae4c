/**
 * The committed bundle matches its sources; editing a source without a
 * rebuild is caught, naming the file; `firebreak policy test` runs the Rego
 * tests with the real opa.
 */
import { execFile } from 'node:child_process';
import { appendFile, copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkBundleFreshness, runPolicyTests } from '../../src/policy/index.js';
import { POLICIES, copyPolicies, opa } from './helpers.js';

const run = promisify(execFile);
const BUILD = resolve(import.meta.dirname, '../../scripts/build-policy.mjs');

describe('the committed bundle', () => {
  it('is fresh, by the TypeScript check and the build script alike', async () => {
    expect(await checkBundleFreshness(POLICIES)).toMatchObject({ fresh: true, problems: [] });
    await expect(run(process.execPath, [BUILD, '--check', POLICIES])).resolves.toBeDefined();
  });
});

describe('a copy of policies/', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ dir, cleanup } = await copyPolicies());
  });
  afterEach(() => cleanup());

  it('is stale when a .rego source changes without a rebuild, naming it', async () => {
    await appendFile(join(dir, 'lib/decision.rego'), '\n# tweak\n');
    const f = await checkBundleFreshness(dir);
    expect(f.fresh).toBe(false);
    expect(f.problems).toEqual(['lib/decision.rego changed since the bundle was built']);
    await expect(run(process.execPath, [BUILD, '--check', dir])).rejects.toMatchObject({ code: 1 });
  });

  it('is stale when data.json changes, or a source is added or removed', async () => {
    const data = JSON.parse(await readFile(join(dir, 'data.json'), 'utf8'));
    data.groups.sre.push('slack:UNEW');
    await writeFile(join(dir, 'data.json'), JSON.stringify(data));
    await writeFile(join(dir, 'extra.rego'), 'package firebreak.extra\n');
    await rm(join(dir, 'approve.rego'));
    expect((await checkBundleFreshness(dir)).problems.sort()).toEqual([
      'approve.rego was removed since the bundle was built',
      'data.json changed since the bundle was built',
      'extra.rego is new since the bundle was built',
    ]);
  });

  it('ignores Rego tests and docs, which are not in the bundle', async () => {
    await appendFile(join(dir, 'decision_test.rego'), '\n# tweak\n');
    await appendFile(join(dir, 'README.md'), '\ntweak\n');
    expect((await checkBundleFreshness(dir)).fresh).toBe(true);
  });

  it('is stale when the bundle was not built from the committed sources', async () => {
    // A bundle that is fine on its own but stamped with another revision.
    await copyFile(join(POLICIES, 'bundle.sources.sha256'), join(dir, 'bundle.sources.sha256'));
    await appendFile(join(dir, 'bundle.sources.sha256'), `${'0'.repeat(64)}  ghost.rego\n`);
    const f = await checkBundleFreshness(dir);
    expect(f.problems).toContain('ghost.rego was removed since the bundle was built');
    expect(f.problems.some((p) => /bundle\.tgz was not built from the sources in bundle\.sources\.sha256/.test(p))).toBe(true);
  });

  it('is stale when the hash file or the bundle is missing', async () => {
    await rm(join(dir, 'bundle.sources.sha256'));
    await rm(join(dir, 'bundle.tgz'));
    const f = await checkBundleFreshness(dir);
    expect(f.problems).toEqual(['bundle.sources.sha256 is missing', expect.stringMatching(/^no policy bundle at /)]);
  });

  it.skipIf(!opa)('is fresh again after npm run policy:build, with a new bundle', async () => {
    const before = await readFile(join(dir, 'bundle.tgz'));
    await appendFile(join(dir, 'lib/decision.rego'), '\n# tweak\n');
    await run(process.execPath, [BUILD, dir]);
    expect(await checkBundleFreshness(dir)).toMatchObject({ fresh: true });
    expect((await readFile(join(dir, 'bundle.tgz'))).equals(before)).toBe(false);
  }, 120_000);

  it.skipIf(!opa)('rebuilding unchanged sources reproduces the committed bundle byte for byte', async () => {
    await run(process.execPath, [BUILD, dir]);
    expect((await readFile(join(dir, 'bundle.tgz'))).equals(await readFile(join(POLICIES, 'bundle.tgz')))).toBe(true);
  }, 120_000);

  it.skipIf(!opa)('policy test fails on a failing Rego test, and on a stale bundle', async () => {
    await writeFile(join(dir, 'broken_test.rego'), 'package firebreak.broken_test\nimport rego.v1\ntest_fails if false\n');
    const r = await runPolicyTests(dir);
    expect(r.exitCode).toBe(1);
    expect(r.output).toMatch(/test_fails: FAIL/);
    expect(r.output).toMatch(/bundle is fresh/);

    await rm(join(dir, 'broken_test.rego'));
    await appendFile(join(dir, 'decision.rego'), '\n# tweak\n');
    const stale = await runPolicyTests(dir);
    expect(stale.exitCode).toBe(1);
    expect(stale.output).toMatch(/decision\.rego changed since the bundle was built/);
  }, 120_000);
});

describe.skipIf(!opa)('firebreak policy test', () => {
  it('passes on policies/: opa test and the freshness check', async () => {
    const r = await runPolicyTests(POLICIES);
    expect(r.output).toMatch(/^PASS: \d+\/\d+$/m);
    expect(r.output).toMatch(/bundle is fresh/);
    expect(r.exitCode).toBe(0);
  }, 120_000);
});
