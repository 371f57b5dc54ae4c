/** Fixtures for the policy tests: real bundles on disk, real opa when installed. */
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import pino from 'pino';
import { extract, pack } from 'tar-stream';
import { installedOpaPath } from '../../src/policy/index.js';
import type { ApproveInput, DecisionInput } from '../../src/policy/index.js';

export const POLICIES = resolve(import.meta.dirname, '../../policies');
export const BUNDLE = join(POLICIES, 'bundle.tgz');
export const silent = pino({ level: 'silent' });

/** The opa CLI if installed (scripts/install-opa.sh), else undefined: tests that need it are skipped. */
export const opa: string | undefined = (() => {
  for (const candidate of [installedOpaPath(), 'opa']) {
    try {
      execFileSync(candidate, ['version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // next
    }
  }
  return undefined;
})();

export async function tempDir(prefix = 'firebreak-policy-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A copy of policies/ (sources, bundle, hash) to change freely. */
export async function copyPolicies(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const t = await tempDir();
  await cp(POLICIES, t.dir, { recursive: true });
  return t;
}

export async function readTgz(bytes: Uint8Array): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const ex = extract();
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.set(entry.header.name, Buffer.concat(chunks));
    }
  })();
  ex.end(gunzipSync(bytes));
  await done;
  return out;
}

export async function makeTgz(entries: Map<string, Uint8Array | string>): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of p) chunks.push(c as Buffer);
  })();
  for (const [name, content] of entries) p.entry({ name }, typeof content === 'string' ? content : Buffer.from(content));
  p.finalize();
  await collected;
  return gzipSync(Buffer.concat(chunks));
}

/** The committed bundle with its data.json changed by `edit`: same wasm, different data. */
export async function bundleWithData(edit: (data: any) => void): Promise<Buffer> {
  const entries = await readTgz(await readFile(BUNDLE));
  const data = JSON.parse(entries.get('/data.json')!.toString('utf8'));
  edit(data);
  entries.set('/data.json', Buffer.from(JSON.stringify(data)));
  return makeTgz(entries);
}

/** Replace `dir`/bundle.tgz atomically, as the build script does. */
export async function installBundle(dir: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dir, `.bundle-${process.pid}-${Math.random().toString(36).slice(2)}`);
  await writeFile(tmp, bytes);
  await rename(tmp, join(dir, 'bundle.tgz'));
}

/** Compile Rego with the real opa into a bundle (only when opa is installed). */
export async function opaBuild(modules: Record<string, string>, entrypoints: string[], data: object = {}): Promise<Buffer> {
  if (!opa) throw new Error('opa not installed');
  const t = await tempDir('firebreak-opa-build-');
  try {
    for (const [name, text] of Object.entries(modules)) await writeFile(join(t.dir, name), text);
    await writeFile(join(t.dir, 'data.json'), JSON.stringify(data));
    const args = ['build', '-t', 'wasm', ...entrypoints.flatMap((e) => ['-e', e]), '-o', 'out.tgz', ...Object.keys(modules), 'data.json'];
    execFileSync(opa, args, { cwd: t.dir, stdio: 'pipe' });
    return await readFile(join(t.dir, 'out.tgz'));
  } finally {
    await t.cleanup();
  }
}

export const NOW = '2027-11-01T10:00:00Z';
export const IN_FREEZE = '2027-12-23T10:00:00Z';

type StepPatch = Partial<DecisionInput['step']>;

export function decisionInput(step: StepPatch = {}, patch: Partial<DecisionInput> = {}): DecisionInput {
  return {
    playbook: { name: 'high-error-rate' },
    step: { id: 'error_rate', action: 'prometheus.query', impact: 'low', approval: 'policy', params: { query: 'up' }, target: 'prometheus', ...step },
    alert: { severity: 'warning', labels: { service: 'api' } },
    run: { id: 'run-1', trigger: 'alert', started_by: null, dry_run: false },
    history: [],
    now: NOW,
    ...patch,
  };
}

export const rollback = (patch: StepPatch = {}): StepPatch => ({
  id: 'rollback', action: 'http.request', impact: 'high', target: 'deploy.internal', params: { method: 'POST', url: 'https://deploy.internal/rollback' }, ...patch,
});

export function ran(minutesAgo: number, status = 'succeeded', patch: Partial<DecisionInput['history'][number]> = {}): DecisionInput['history'][number] {
  return {
    run_id: `old-${minutesAgo}`, playbook: 'high-error-rate', step_id: 'rollback', action: 'http.request', target: 'deploy.internal', status,
    at: new Date(Date.parse(NOW) - minutesAgo * 60_000).toISOString(), ...patch,
  };
}

/** The policy's `user` object for an actor string (`slack:U1`, `token:alice`, `service`); '' gives an empty id. */
export function userOf(actor: string, patch: Partial<ApproveInput['user']> = {}): ApproveInput['user'] {
  const i = actor.indexOf(':');
  const method = (i > 0 ? actor.slice(0, i) : actor === 'service' ? 'service' : 'token') as ApproveInput['user']['method'];
  return { id: actor, name: i > 0 ? actor.slice(i + 1) : actor, method, verified: method !== 'local', groups: [], ...patch };
}

export function approveInput(user: string, patch: Partial<ApproveInput['approval']> = {}): ApproveInput {
  return {
    approval: {
      id: 'ap-1', run_id: 'run-1', step_id: 'rollback', approvers: ['group:sre'], min_approvals: 1, started_by: null,
      playbook: 'high-error-rate', action: 'http.request', impact: 'high', decision: 'approve', already_approved_by: [], ...patch,
    },
    user: userOf(user),
    mode: 'authenticated',
    now: NOW,
  };
}
