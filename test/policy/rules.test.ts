/**
 * Each rule deciding as intended, through the committed bundle and the real
 * opa-wasm runtime (the same path the engine takes), not through `opa eval`.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPolicyGate, type ReloadingPolicyGate } from '../../src/policy/index.js';
import { BUNDLE, IN_FREEZE, NOW, POLICIES, approveInput, decisionInput, ran, rollback, silent, userOf } from './helpers.js';

let gate: ReloadingPolicyGate;
beforeAll(async () => {
  gate = await createPolicyGate({ dir: POLICIES, logger: silent, watch: false });
});
afterAll(() => gate.close());

const noApproval = { allow: true, require_approval: false, approvers: [], min_approvals: 0 };
const denied = { allow: false, require_approval: false, approvers: [], min_approvals: 0 };

describe('firebreak/decision', () => {
  it('is ready with the committed bundle, answering with its hash and the canonical input hash', async () => {
    const bundleHash = createHash('sha256').update(await readFile(BUNDLE)).digest('hex');
    expect(gate.status()).toMatchObject({ ready: true, bundleHash });
    expect(gate.status().revision).toMatch(/^[0-9a-f]{64}$/);

    const input = decisionInput();
    const r = await gate.decide(input);
    expect(r.bundleHash).toBe(bundleHash);
    expect(r.error).toBeUndefined();
    // RFC 8785: key order does not change the hash.
    const reordered = Object.fromEntries(Object.entries(input).reverse()) as typeof input;
    expect((await gate.decide(reordered)).inputHash).toBe(r.inputHash);
    expect(r.inputHash).toMatch(/^[0-9a-f]{64}$/);
    expect((await gate.decide({ ...input, now: '2027-11-01T10:00:01Z' })).inputHash).not.toBe(r.inputHash);
  });

  it('allows a low-impact gather step without approval', async () => {
    const { result } = await gate.decide(decisionInput());
    expect(result).toEqual({ ...noApproval, reasons: ['low-impact step: runs without approval'] });
  });

  it('asks group sre to approve a high-impact step', async () => {
    const { result } = await gate.decide(decisionInput(rollback()));
    expect(result).toEqual({
      allow: true, require_approval: true, approvers: ['group:sre'], min_approvals: 1,
      reasons: ['high-impact step: needs 1 approval(s) from group:sre'],
    });
  });

  it('forces approval of a low-impact step marked approval: required', async () => {
    const { result } = await gate.decide(decisionInput({ approval: 'required' }));
    expect(result).toMatchObject({ allow: true, require_approval: true, approvers: ['group:oncall', 'group:sre'], min_approvals: 1 });
  });

  it('skips approval for approval: never, but still denies', async () => {
    expect((await gate.decide(decisionInput(rollback({ approval: 'never' })))).result).toMatchObject(noApproval);
    const exec = await gate.decide(decisionInput({ action: 'exec', approval: 'never', params: { script: 'wipe.sh' } }));
    expect(exec.result).toMatchObject(denied);
    expect(exec.result.reasons).toEqual(['exec: script wipe.sh is not in the allow-list (data.exec.allowed_scripts)']);
  });

  it('notes four-eyes when a person started the run', async () => {
    const { result } = await gate.decide(decisionInput(rollback(), { run: { id: 'run-1', trigger: 'manual', started_by: 'oidc:alice', dry_run: false } }));
    expect(result.reasons).toContain('four-eyes: oidc:alice started this run and cannot approve it');
  });

  describe('change freeze', () => {
    it('denies high-impact steps on non-critical alerts', async () => {
      const { result } = await gate.decide(decisionInput(rollback(), { now: IN_FREEZE }));
      expect(result).toEqual({
        ...denied,
        reasons: ['change freeze year-end-2027 is in effect: high-impact steps are denied unless the alert severity is critical'],
      });
    });

    it('needs two sre approvals when the alert is critical', async () => {
      const { result } = await gate.decide(decisionInput(rollback(), { now: IN_FREEZE, alert: { severity: 'critical' } }));
      expect(result).toMatchObject({ allow: true, require_approval: true, approvers: ['group:sre'], min_approvals: 2 });
    });

    it('denies approval: never when the freeze needs approvals', async () => {
      const { result } = await gate.decide(decisionInput(rollback({ approval: 'never' }), { now: IN_FREEZE, alert: { severity: 'critical' } }));
      expect(result.allow).toBe(false);
      expect(result.reasons[0]).toMatch(/approval: never/);
    });

    it('leaves low-impact steps alone', async () => {
      expect((await gate.decide(decisionInput({}, { now: IN_FREEZE }))).result).toMatchObject(noApproval);
    });

    it('compares times, not strings (offsets and fractions, via the wasm time.parse_rfc3339_ns)', async () => {
      const at = async (now: string) => (await gate.decide(decisionInput(rollback(), { now }))).result.allow;
      expect(await at('2027-12-16T23:30:00-01:00')).toBe(false); // 00:30Z on the 17th
      expect(await at('2027-12-16T23:59:59.999999999Z')).toBe(true);
      expect(await at('2027-12-17T00:00:00Z')).toBe(false);
      expect(await at('2028-01-04T09:00:00Z')).toBe(true); // end is exclusive
    });
  });

  describe('blast radius', () => {
    const withHistory = (history: ReturnType<typeof ran>[]) => gate.decide(decisionInput(rollback(), { history }));

    it('allows up to the limit and denies past it', async () => {
      expect((await withHistory([ran(5), ran(20, 'failed')])).result.allow).toBe(true);
      const { result } = await withHistory([ran(5), ran(20, 'failed'), ran(59, 'compensated')]);
      expect(result).toEqual({
        ...denied,
        reasons: ['blast radius: http.request on deploy.internal already ran 3 time(s) in the last 60 min (limit 3)'],
      });
    });

    it('counts only the last hour, steps that ran, and the same action and target', async () => {
      const history = [ran(5), ran(6), ran(61), ran(7, 'denied'), ran(8, 'skipped'), ran(9, 'succeeded', { target: 'other' }), ran(10, 'succeeded', { action: 'exec' })];
      expect((await withHistory(history)).result.allow).toBe(true);
    });

    it('counts entries whose time does not parse (the safe side)', async () => {
      expect((await withHistory([ran(5), ran(6), ran(0, 'succeeded', { at: 'soon' })])).result.allow).toBe(false);
    });

    it('has a tighter limit for exec', async () => {
      const step = { action: 'exec', impact: 'high' as const, params: { script: 'cleanup-disk.sh' }, target: 'cleanup-disk.sh' };
      const history = [ran(5, 'succeeded', { action: 'exec', target: 'cleanup-disk.sh' }), ran(9, 'succeeded', { action: 'exec', target: 'cleanup-disk.sh' })];
      const { result } = await gate.decide(decisionInput(step, { history }));
      expect(result.reasons).toEqual(['blast radius: exec on cleanup-disk.sh already ran 2 time(s) in the last 60 min (limit 2)']);
    });
  });

  describe('exec allow-list', () => {
    it('allows listed scripts and denies others or none', async () => {
      expect((await gate.decide(decisionInput({ action: 'exec', params: { script: 'cleanup-disk.sh' } }))).result.allow).toBe(true);
      expect((await gate.decide(decisionInput({ action: 'exec', params: { script: '../../bin/sh' } }))).result.allow).toBe(false);
      expect((await gate.decide(decisionInput({ action: 'exec', params: { args: [] } }))).result.reasons).toEqual(['exec step names no script (params.script)']);
    });
  });

  describe('default deny and malformed input', () => {
    it('denies what no rule allows, saying why', async () => {
      const r = await gate.decide(decisionInput({ impact: 'medium' as never }));
      expect(r.result).toEqual({ ...denied, reasons: ['no rule allows step "error_rate" (action "prometheus.query", impact "medium")'] });
      expect(r.error).toBeUndefined(); // a policy deny, not a policy failure
    });

    it('denies when now is not a time', async () => {
      const { result } = await gate.decide(decisionInput({}, { now: 'yesterday' }));
      expect(result.allow).toBe(false);
      expect(result.reasons[0]).toMatch(/input.now is not an RFC 3339 time/);
    });
  });
});

describe('firebreak/approve', () => {
  const answer = async (...args: Parameters<typeof approveInput>) => (await gate.approve(approveInput(...args))).result;

  it('lets a member of an approver group answer', async () => {
    expect(await answer('slack:U0SRE1')).toEqual({ allow: true, reason: 'slack:U0SRE1 may approve as group:sre' });
    expect((await answer('oidc:bob', { decision: 'reject' })).allow).toBe(true);
  });

  it('refuses anyone outside the approvers', async () => {
    expect(await answer('slack:U0ONC1')).toEqual({ allow: false, reason: 'slack:U0ONC1 is not an approver of this step (approvers: group:sre)' });
    expect((await answer('slack:U0SRE1', { approvers: ['group:unknown'] })).allow).toBe(false);
  });

  it('accepts users named directly', async () => {
    expect((await answer('slack:UGUEST', { approvers: ['group:sre', 'slack:UGUEST'] })).allow).toBe(true);
  });

  it('applies four-eyes to the starter on any channel, but lets them reject', async () => {
    expect(await answer('slack:U0SRE1', { started_by: 'oidc:alice' })).toEqual({
      allow: false,
      reason: 'four-eyes: run run-1 was started by oidc:alice; slack:U0SRE1 (the same person) cannot approve its steps',
    });
    expect((await answer('slack:U0SRE1', { started_by: 'oidc:alice', decision: 'reject' })).allow).toBe(true);
    expect((await answer('slack:U0SRE2', { started_by: 'oidc:alice' })).allow).toBe(true);
  });

  it('lets a person approve once', async () => {
    expect(await answer('slack:U0SRE1', { min_approvals: 2, already_approved_by: ['token:alice'] })).toEqual({
      allow: false,
      reason: 'slack:U0SRE1 already approved this step (as token:alice)',
    });
    expect((await answer('slack:U0SRE2', { min_approvals: 2, already_approved_by: ['token:alice'] })).allow).toBe(true);
  });

  it('denies malformed answers', async () => {
    expect(await answer('', {})).toEqual({ allow: false, reason: 'no answering user given' });
    expect((await answer('slack:U0SRE1', { decision: 'maybe' as never })).reason).toBe('decision must be approve or reject, not "maybe"');
  });
});

describe('firebreak/authorize (through the compiled bundle)', () => {
  const ask = async (actor: string, action: string, resource: Record<string, unknown> = {}, mode: 'local' | 'authenticated' = 'authenticated') =>
    gate.authorize({ user: userOf(actor), action: action as never, resource, mode, now: NOW });

  it('answers exactly { allow, reasons } with the bundle hash for the timeline', async () => {
    const r = await ask('slack:U0ONC1', 'run.start', { playbook: 'p' });
    expect(r.result).toEqual({ allow: true, reasons: ['on-call and SRE may start runs'] });
    expect(r.bundleHash).toBe(gate.status().bundleHash);
    expect(r.inputHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('keeps the service token away from approvals, and unverified names outside local mode', async () => {
    expect((await ask('service', 'approval.answer')).result.allow).toBe(false);
    expect((await ask('service', 'run.start', { playbook: 'p' })).result.allow).toBe(true);
    expect((await ask('local:alice', 'approval.answer')).result.allow).toBe(false);
    expect((await ask('local:alice', 'approval.answer', {}, 'local')).result.allow).toBe(true);
  });

  it('defines the acts of the next release: pause for anyone, resume for SRE', async () => {
    expect((await ask('token:erin', 'automation.pause')).result.allow).toBe(true);
    expect((await ask('token:erin', 'automation.resume')).result.allow).toBe(false);
    expect((await ask('token:bob', 'automation.resume')).result.allow).toBe(true);
    expect((await ask('token:carol', 'silence.create')).result.allow).toBe(true);
    expect((await ask('token:carol', 'run.cancel')).result.allow).toBe(false);
  });

  it('fails closed on unknown acts', async () => {
    expect((await ask('token:alice', 'run.delete')).result).toEqual({ allow: false, reasons: ['unknown action "run.delete"'] });
  });
});
