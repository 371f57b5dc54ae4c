/**
 * Hot reload: replacing bundle.tgz on disk changes decisions without a
 * restart; a bad bundle denies until a good one arrives; a reload never
 * exposes half a swap.
 */
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createPolicyGate, type ReloadingPolicyGate } from '../../src/policy/index.js';
import { BUNDLE, bundleWithData, decisionInput, installBundle, rollback, silent, tempDir } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let gate: ReloadingPolicyGate;
let threeApprovals: Buffer;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  await copyFile(BUNDLE, join(dir, 'bundle.tgz'));
  threeApprovals = await bundleWithData((d) => (d.approval.high_impact.min_approvals = 3));
});
afterEach(async () => {
  await gate.close();
  await cleanup();
});

const minApprovals = async () => (await gate.decide(decisionInput(rollback()))).result.min_approvals;
const waitFor = (check: () => Promise<void> | void) => vi.waitFor(check, { timeout: 5_000, interval: 25 });

describe.each([
  { how: 'fs.watch', options: { debounceMs: 20, pollMs: 60_000 } },
  { how: 'the stat poll alone', options: { fsWatch: false, pollMs: 50 } },
])('reload via $how', ({ options }) => {
  beforeEach(async () => {
    gate = await createPolicyGate({ dir, logger: silent, ...options });
  });

  it('picks up a replaced bundle without restart', async () => {
    const before = gate.status().bundleHash;
    expect(await minApprovals()).toBe(1);
    await installBundle(dir, threeApprovals);
    await waitFor(async () => expect(await minApprovals()).toBe(3));
    expect(gate.status()).toMatchObject({ ready: true });
    expect(gate.status().bundleHash).not.toBe(before);
    expect((await gate.decide(decisionInput(rollback()))).bundleHash).toBe(gate.status().bundleHash);
  });

  it('denies while the bundle is bad or gone, and recovers when a good one arrives', async () => {
    await writeFile(join(dir, 'bundle.tgz'), 'not a bundle'); // in place, not by rename
    await waitFor(() => expect(gate.status().ready).toBe(false));
    expect(gate.status().reason).toMatch(/not a readable tar\.gz/);
    expect((await gate.decide(decisionInput())).result.allow).toBe(false);

    await rm(join(dir, 'bundle.tgz'));
    await waitFor(() => expect(gate.status().reason).toMatch(/no policy bundle/));

    await installBundle(dir, threeApprovals);
    await waitFor(() => expect(gate.status().ready).toBe(true));
    expect(await minApprovals()).toBe(3);
  });
});

it('an atomic swap: every answer comes whole from one bundle', async () => {
  gate = await createPolicyGate({ dir, logger: silent, watch: false });
  const original = await readFile(BUNDLE);
  const expected = new Map<string, number>();
  expected.set(gate.status().bundleHash, 1);
  const answers: Array<{ hash: string; min: number }> = [];
  let swapping = true;
  const asking = (async () => {
    while (swapping) {
      const r = await gate.decide(decisionInput(rollback()));
      answers.push({ hash: r.bundleHash, min: r.result.min_approvals });
      await new Promise((r) => setImmediate(r));
    }
  })();
  for (let i = 0; i < 6; i++) {
    await installBundle(dir, i % 2 === 0 ? threeApprovals : original);
    const s = await gate.reload();
    expected.set(s.bundleHash, i % 2 === 0 ? 3 : 1);
  }
  swapping = false;
  await asking;
  expect(answers.length).toBeGreaterThan(0);
  for (const a of answers) expect(a.min).toBe(expected.get(a.hash));
  expect(new Set(answers.map((a) => a.hash)).size).toBe(2);
});
