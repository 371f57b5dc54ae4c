/**
 * Fail closed: a missing, corrupt or malformed bundle, a policy that throws or
 * answers nonsense — each is a deny whose reason says what broke, with `error`
 * set. The bad bundles are real: bytes on disk through opa-wasm, built with the
 * real opa CLI where that is needed (and installed).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { createPolicyGate, evaluatePolicy, type ReloadingPolicyGate } from '../../src/policy/index.js';
import {
  BUNDLE, POLICIES, approveInput, bundleWithData, decisionInput, installBundle, makeTgz, opa, opaBuild, readTgz, rollback, silent, tempDir,
} from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let gate: ReloadingPolicyGate | undefined;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  await gate?.close();
  gate = undefined;
  await cleanup();
});

async function gateWith(bytes?: Uint8Array): Promise<ReloadingPolicyGate> {
  if (bytes) await installBundle(dir, bytes);
  gate = await createPolicyGate({ dir, logger: silent, watch: false });
  return gate;
}

/** Both entry points deny, fail-closed, with `reason` in the error. */
async function expectDenied(g: ReloadingPolicyGate, reason: RegExp, bundleHash: string | RegExp = 'none') {
  const d = await g.decide(decisionInput());
  expect(d.result).toEqual({ allow: false, require_approval: false, approvers: [], min_approvals: 0, reasons: [expect.stringMatching(reason)] });
  expect(d.error).toMatch(reason);
  expect(d.bundleHash).toMatch(bundleHash);
  expect(d.inputHash).toMatch(/^[0-9a-f]{64}$/); // the timeline still gets what was asked
  const a = await g.approve(approveInput('slack:U0SRE1'));
  expect(a.result).toEqual({ allow: false, reason: expect.stringMatching(reason) });
  expect(a.error).toMatch(reason);
}

describe('a bundle that cannot be loaded', () => {
  it('missing: not ready, every decision denied', async () => {
    const g = await gateWith();
    expect(g.status()).toMatchObject({ ready: false, bundleHash: 'none', reason: expect.stringMatching(/no policy bundle at .*bundle\.tgz/) });
    await expectDenied(g, /no policy bundle at/);
    expect((await g.decide(decisionInput())).result.reasons[0]).toMatch(/^policy error, denied: no policy bundle at/);
  });

  it('missing folder: same', async () => {
    gate = await createPolicyGate({ dir: join(dir, 'nope'), logger: silent });
    expect(gate.status().ready).toBe(false);
    await expectDenied(gate, /no policy bundle at/);
  });

  it('not gzip', async () => {
    const g = await gateWith(randomBytes(4096));
    expect(g.status().reason).toMatch(/^bundle [0-9a-f]{12} is not a readable tar\.gz: /);
    await expectDenied(g, /is not a readable tar\.gz/);
  });

  it('truncated', async () => {
    const good = await readFile(BUNDLE);
    const g = await gateWith(good.subarray(0, good.length >> 1));
    await expectDenied(g, /is not a readable tar\.gz: unexpected end of file/);
  });

  it('no policy.wasm', async () => {
    const g = await gateWith(await makeTgz(new Map([['/data.json', '{}']])));
    await expectDenied(g, /has no policy\.wasm/);
  });

  it('corrupt wasm', async () => {
    const entries = await readTgz(await readFile(BUNDLE));
    const wasm = Buffer.from(entries.get('/policy.wasm')!);
    wasm.fill(0xff, 1000, 2000); // flip a KiB in the code
    entries.set('/policy.wasm', wasm);
    const g = await gateWith(await makeTgz(entries));
    await expectDenied(g, /policy\.wasm does not load: /);
  });

  it('data.json that is not JSON, or not an object', async () => {
    const entries = await readTgz(await readFile(BUNDLE));
    entries.set('/data.json', Buffer.from('{"groups": '));
    const g = await gateWith(await makeTgz(entries));
    await expectDenied(g, /data\.json is not valid JSON/);
    entries.set('/data.json', Buffer.from('[1, 2]'));
    await installBundle(dir, await makeTgz(entries));
    expect((await g.reload()).reason).toMatch(/data\.json must hold a JSON object/);
  });
});

describe('a loaded policy that answers badly', () => {
  it('wrong shape from data: min_approvals 1.5 denies the step, naming the field', async () => {
    const g = await gateWith(await bundleWithData((d) => (d.approval.high_impact.min_approvals = 1.5)));
    expect(g.status().ready).toBe(true); // the sample question (a low-impact step) is answered fine
    const r = await g.decide(decisionInput(rollback()));
    expect(r.result.allow).toBe(false);
    expect(r.error).toMatch(/^firebreak\/decision returned a malformed result: min_approvals: /);
    expect(r.result.reasons).toEqual([`policy error, denied: ${r.error}`]);
    expect(r.bundleHash).toBe(g.status().bundleHash);
    expect((await g.decide(decisionInput())).result.allow).toBe(true); // other answers unaffected
  });

  it('an approval nobody can give is malformed: min_approvals 0', async () => {
    const g = await gateWith(await bundleWithData((d) => (d.approval.high_impact.min_approvals = 0)));
    const r = await g.decide(decisionInput(rollback()));
    expect(r.error).toMatch(/require_approval needs at least one approver and min_approvals >= 1/);
  });

  it('an evaluation error (a function with two answers, from bad data) denies', async () => {
    const g = await gateWith(await bundleWithData((d) => (d.people.mallory = ['slack:U0SRE1'])));
    const r = await g.approve(approveInput('slack:U0SRE1', { started_by: 'token:alice' }));
    expect(r.result.allow).toBe(false);
    expect(r.error).toMatch(/^firebreak\/approve failed: .*conflict/);
  });

  it('input that is not JSON denies without evaluating', async () => {
    gate = await createPolicyGate({ dir: POLICIES, logger: silent, watch: false });
    const r = await gate.decide(decisionInput({ params: { n: 1n } }));
    expect(r.result.allow).toBe(false);
    expect(r.error).toMatch(/input cannot be serialised/);
  });
});

describe.skipIf(!opa)('bad bundles compiled with the real opa', () => {
  const APPROVE_OK = 'package firebreak.approve\nimport rego.v1\nallow := false\nreason := "no"\n';
  const AUTHORIZE_OK = 'package firebreak.authorize\nimport rego.v1\nallow := false\nreasons := ["no"]\n';
  const ALL = ['firebreak/decision', 'firebreak/approve', 'firebreak/authorize'];

  it('wrong shape: not ready, and says which field', async () => {
    const bytes = await opaBuild(
      { 'd.rego': 'package firebreak.decision\nimport rego.v1\nallow := "yes"\n', 'a.rego': APPROVE_OK, 'z.rego': AUTHORIZE_OK },
      ALL,
    );
    const g = await gateWith(bytes);
    expect(g.status()).toMatchObject({ ready: false, bundleHash: 'none' });
    expect(g.status().reason).toMatch(/cannot answer a sample firebreak\/decision question: firebreak\/decision returned a malformed result: allow: .*boolean/);
    await expectDenied(g, /malformed result: allow/);
  });

  it('undefined result', async () => {
    const bytes = await opaBuild(
      { 'f.rego': 'package firebreak\nimport rego.v1\ndecision := {"allow": true} if input.never\napprove := {"allow": false, "reason": "no"}\nauthorize := {"allow": false, "reasons": ["no"]}\n' },
      ALL,
    );
    const g = await gateWith(bytes);
    expect(g.status().reason).toMatch(/firebreak\/decision is undefined for this input/);
    await expectDenied(g, /firebreak\/decision is undefined/);
  });

  it('an entry point missing', async () => {
    const bytes = await opaBuild({ 'a.rego': APPROVE_OK, 'z.rego': AUTHORIZE_OK }, ['firebreak/approve', 'firebreak/authorize']);
    const g = await gateWith(bytes);
    await expectDenied(g, /has no entry point firebreak\/decision \(it has: firebreak\/approve, firebreak\/authorize\)/);
    // A bundle from before firebreak/authorize existed is refused whole: acts would all be denied anyway.
    const old = await gateWith(await opaBuild({ 'd.rego': 'package firebreak.decision\nimport rego.v1\nallow := false\nrequire_approval := false\napprovers := []\nmin_approvals := 0\nreasons := []\n', 'a.rego': APPROVE_OK }, ['firebreak/decision', 'firebreak/approve']));
    await expectDenied(old, /has no entry point firebreak\/authorize/);
    const who = { id: 'token:alice', name: 'alice', method: 'token' as const, verified: true, groups: [] };
    const refused = await old.authorize({ user: who, action: 'run.start', resource: {}, mode: 'authenticated', now: '2027-11-01T10:00:00Z' });
    expect(refused.result).toEqual({ allow: false, reasons: [expect.stringMatching(/^policy error, denied: .*has no entry point firebreak\/authorize/)] });
  });

  it('built-ins the wasm runtime lacks: refused at load, not at first use', async () => {
    const bytes = await opaBuild(
      { 'd.rego': 'package firebreak.decision\nimport rego.v1\ndefault allow := false\nallow if time.now_ns() < 0\n', 'a.rego': APPROVE_OK, 'z.rego': AUTHORIZE_OK },
      ALL,
    );
    const g = await gateWith(bytes);
    await expectDenied(g, /calls built-ins the wasm runtime lacks: time\.now_ns/);
  });

  it('an evaluation error (conflicting values)', async () => {
    const d = 'package firebreak.decision\nimport rego.v1\ndefault allow := false\nallow := true if input.a\nallow := false if input.b\nrequire_approval := false\napprovers := []\nmin_approvals := 0\nreasons := []\n';
    const g = await gateWith(await opaBuild({ 'd.rego': d, 'a.rego': APPROVE_OK, 'z.rego': AUTHORIZE_OK }, ALL));
    expect(g.status().ready).toBe(true);
    const r = await g.decide({ ...decisionInput(), a: true, b: true } as never);
    expect(r.error).toMatch(/^firebreak\/decision failed: .*conflict/);
    expect(r.bundleHash).toBe(g.status().bundleHash);
    // The instance survives an aborted evaluation: the next question is answered normally.
    const next = await g.decide({ ...decisionInput(), a: true } as never);
    expect(next.error).toBeUndefined();
    expect(next.result.allow).toBe(true);
  });
});

describe('evaluatePolicy (firebreak policy eval)', () => {
  it('answers through the bundle in a folder', async () => {
    const r = await evaluatePolicy(POLICIES, 'firebreak/decision', decisionInput(rollback()));
    expect(r.result).toMatchObject({ allow: true, require_approval: true, approvers: ['group:sre'] });
    const a = await evaluatePolicy(POLICIES, 'firebreak/approve', approveInput('slack:U0ONC1'));
    expect(a.result).toMatchObject({ allow: false });
  });

  it('takes partial what-if input and lets the policy judge it', async () => {
    const r = await evaluatePolicy(POLICIES, 'firebreak/decision', { step: { id: 's', action: 'note', impact: 'low', approval: 'policy' }, now: '2027-11-01T10:00:00Z' });
    expect(r.result.allow).toBe(true);
  });

  it('fails closed without a bundle, and rejects unknown entry points', async () => {
    const r = await evaluatePolicy(dir, 'firebreak/decision', decisionInput());
    expect(r.error).toMatch(/no policy bundle/);
    await expect(evaluatePolicy(POLICIES, 'firebreak/nope', {})).rejects.toBeInstanceOf(ValidationError);
  });
});
