import { execFile } from 'node:child_process';
import { access, constants, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createActionRegistry } from '../../src/actions/index.js';
import { renderValue, evaluateCondition } from '../../src/expr/index.js';
import type { Alert } from '../../src/ingest/types.js';
import { formatProblem, loadPlaybooks, matchesAlert, type Playbook } from '../../src/playbooks/index.js';
import { playbookJsonSchemaText, SCHEMA_PATH } from '../../src/playbooks/write-schema.js';

const BUILTINS = new Set(['http.request', 'prometheus.query', 'prometheus.wait', 'slack.message', 'wait', 'note', 'exec']);

/** The fields matching and templates read, straight from an Alertmanager v4 payload. */
async function sampleAlert(file: string): Promise<Alert> {
  const payload = JSON.parse(await readFile(join('examples/alerts', file), 'utf8'));
  expect(payload.version).toBe('4');
  const a = payload.alerts[0];
  return {
    source: 'alertmanager',
    fingerprint: a.fingerprint,
    status: a.status,
    labels: a.labels,
    annotations: a.annotations,
    startsAt: a.startsAt,
    endsAt: null,
    summary: a.annotations.summary ?? '',
    severity: a.labels.severity ?? '',
    generatorURL: a.generatorURL,
    raw: a,
  };
}

// Outputs shaped like the built-in actions' (prometheus: value/vector, http: status/headers/body, exec: stdout...).
const fakeOutputs = {
  value: 12,
  vector: [],
  status: 200,
  headers: {},
  body: { spec: { replicas: 3 }, status: { containerStatuses: [{ name: 'cart', restartCount: 7 }] } },
  stdout: 'would delete /var/log/app.log.1 (1024 bytes)',
  stderr: '',
  exitCode: 0,
};

describe('sample playbooks', () => {
  it('all validate clean, by name and against the real action input schemas', async () => {
    for (const actions of [BUILTINS, createActionRegistry()]) {
      const { playbooks, problems } = await loadPlaybooks('playbooks', { actions });
      expect(problems.map(formatProblem)).toEqual([]);
      expect(playbooks.map((p) => p.name).sort()).toEqual(['disk-almost-full', 'high-error-rate', 'high-latency-scale-out', 'pod-crash-looping']);
    }
  });

  const pairs: Array<[string, string]> = [
    ['high-error-rate.json', 'high-error-rate'],
    ['disk-almost-full.json', 'disk-almost-full'],
    ['pod-crash-looping.json', 'pod-crash-looping'],
    ['high-latency.json', 'high-latency-scale-out'],
  ];

  it('has one sample alert per playbook, matching only that playbook', async () => {
    const { playbooks } = await loadPlaybooks('playbooks', { actions: BUILTINS });
    expect((await readdir('examples/alerts')).sort()).toEqual(pairs.map(([f]) => f).sort());
    for (const [file, name] of pairs) {
      const alert = await sampleAlert(file);
      expect(playbooks.filter((p) => matchesAlert(p, alert)).map((p) => p.name), file).toEqual([name]);
    }
  });

  it('renders every step of its playbook from the sample alert', async () => {
    const { playbooks } = await loadPlaybooks('playbooks', { actions: BUILTINS });
    const actions = createActionRegistry();
    for (const [file, name] of pairs) {
      const pb = playbooks.find((p) => p.name === name) as Playbook;
      const alert = await sampleAlert(file);
      const vars = { alert, run: { id: 'run-1', trigger: 'alert' }, secrets: { DEPLOY_TOKEN: 't', K8S_TOKEN: 'k' }, steps: {} as Record<string, unknown> };
      if (pb.concurrency) expect(renderValue(pb.concurrency.key, vars)).not.toBe('');
      if (pb.channel) expect(renderValue(pb.channel, vars)).toMatch(/^#[a-z0-9-]+$/);
      for (const step of pb.steps) {
        if (step.when !== undefined) expect(typeof evaluateCondition(step.when, vars)).toBe('boolean');
        const input = renderValue(step.with, vars);
        const parsed = actions.get(step.action)!.input.safeParse(input);
        expect(parsed.success, `${name}/${step.id}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
        if (step.compensate) expect(actions.get(step.compensate.action)!.input.safeParse(renderValue(step.compensate.with, { ...vars, steps: { ...vars.steps, [step.id]: { output: fakeOutputs } } })).success).toBe(true);
        vars.steps[step.id] = { output: fakeOutputs };
      }
    }
  });

  it('scale-out patches a number of replicas, not a string', async () => {
    const { playbooks } = await loadPlaybooks('playbooks', { actions: BUILTINS });
    const step = playbooks.find((p) => p.name === 'high-latency-scale-out')!.steps.find((s) => s.id === 'scale_out')!;
    const vars = { alert: await sampleAlert('high-latency.json'), steps: { current_scale: { output: fakeOutputs } }, secrets: { K8S_TOKEN: 'k' }, run: {} };
    expect((renderValue(step.with, vars) as { body: unknown }).body).toEqual({ spec: { replicas: 5 } });
  });
});

describe('cleanup-disk.sh', () => {
  const script = join(process.cwd(), 'playbooks/scripts/cleanup-disk.sh');
  const run = promisify(execFile);

  it('is executable and only lists files unless given --apply', async () => {
    await access(script, constants.X_OK);
    const dir = await mkdtemp(join(tmpdir(), 'fb-cleanup-'));
    try {
      const old = join(dir, 'app.log.1');
      const fresh = join(dir, 'app.log.2');
      const kept = join(dir, 'app.log');
      for (const f of [old, fresh, kept]) await writeFile(f, 'x'.repeat(10));
      const tenDaysAgo = new Date(Date.now() - 10 * 86_400_000);
      await utimes(old, tenDaysAgo, tenDaysAgo);
      await utimes(kept, tenDaysAgo, tenDaysAgo);

      const dry = await run(script, ['--days', '7', dir]);
      expect(dry.stdout).toContain(`would delete ${old} (10 bytes)`);
      expect(dry.stdout).toContain('would delete 1 files, 10 bytes (dry run');
      await access(old); // still there

      const applied = await run(script, ['--apply', '--days', '7', dir]);
      expect(applied.stdout).toContain(`deleted ${old}`);
      await expect(access(old)).rejects.toThrow();
      await access(fresh); // too recent
      await access(kept); // not a rotated log
      await expect(run(script, ['--apply', '/'])).rejects.toMatchObject({ code: 2 });
      await expect(run(script, ['relative/dir'])).rejects.toMatchObject({ code: 2 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('JSON Schema for editors', () => {
  it('the committed schema/playbook.schema.json is generated from the zod schema', async () => {
    // Regenerate with: npx tsc && node dist/src/playbooks/write-schema.js
    expect(await readFile(SCHEMA_PATH, 'utf8')).toBe(playbookJsonSchemaText());
  });
});
