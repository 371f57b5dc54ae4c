/**
 * Playbook tests (`firebreak test`, PRODUCT.md "Playbook changes"): the
 * sample tests pass on the sample playbooks (so `npm test` runs them); a
 * changed playbook fails with a readable expected/got per mismatch; the file
 * format's parts (alert by file, scripted answers, an unanswered approval)
 * behave as documented. Each run makes and drops its own scratch database on
 * the suite's Postgres server.
 */
import { cp, mkdtemp, readFile, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { playbookTestJsonSchemaText, TEST_SCHEMA_PATH } from '../../src/playbook-tests/index.js';
import { adminUrl } from '../helpers/db.js';
import { ROOT, runCli } from '../helpers/server.js';

const test = (args: string[]) => runCli(['test', ...args], { DATABASE_URL: adminUrl() });

async function copyOfSamples(): Promise<string> {
  const dir = join(await mkdtemp(join(tmpdir(), 'fb-tests-')), 'playbooks');
  await cp(join(ROOT, 'playbooks'), dir, { recursive: true });
  return dir;
}

async function scratchDatabases(): Promise<string[]> {
  const c = new pg.Client({ connectionString: adminUrl() });
  await c.connect();
  try {
    return (await c.query<{ datname: string }>("select datname from pg_database where datname like 'firebreak_scratch_%'")).rows.map((r) => r.datname);
  } finally {
    await c.end();
  }
}

describe('firebreak test', () => {
  it('passes every sample test on the sample playbooks, and leaves no scratch database behind', async () => {
    const before = await scratchDatabases();
    const res = await test([join(ROOT, 'playbooks', 'tests')]);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const ok = res.stdout.split('\n').filter((l) => l.startsWith('ok '));
    expect(ok.length).toBeGreaterThanOrEqual(8);
    for (const sample of ['high-error-rate', 'high-latency-scale-out', 'pod-crash-looping', 'disk-almost-full']) {
      expect(ok.filter((l) => l.includes(sample)).length, `tests of ${sample}`).toBeGreaterThanOrEqual(2);
    }
    expect(res.stderr).toMatch(/8 test file\(s\): 8 passed, 0 failed/);
    expect(await scratchDatabases()).toEqual(before);
  });

  it('defaults to <FIREBREAK_PLAYBOOKS>/tests and the folder above it', async () => {
    const dir = await copyOfSamples();
    const res = await runCli(['test'], { DATABASE_URL: adminUrl(), FIREBREAK_PLAYBOOKS: dir });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stderr).toContain(`from ${dir}/tests against ${dir}`);
  });

  it('a changed rollback URL fails the test with what was expected and what the run rendered', async () => {
    const dir = await copyOfSamples();
    const file = join(dir, 'high-error-rate.yaml');
    await writeFile(file, (await readFile(file, 'utf8')).replace('/api/services/${{ alert.labels.service }}/rollback', '/api/v2/services/${{ alert.labels.service }}/rollback'));
    const res = await test([join(dir, 'tests')]);
    expect(res.code, res.stdout + res.stderr).toBe(1);
    expect(res.stdout).toMatch(/^FAIL {2}high-error-rate rolls back checkout/m);
    expect(res.stdout).toContain('requests.rollback.url');
    expect(res.stdout).toContain('- expected: https://deploy.internal/api/services/checkout/rollback');
    expect(res.stdout).toContain('+ got:      https://deploy.internal/api/v2/services/checkout/rollback');
    // The other tests still pass: one failure does not hide the rest.
    expect(res.stdout).toMatch(/^ok {4}high-error-rate leaves checkout alone/m);
    expect(res.stderr).toContain('1 failed');
  });

  it('reads an alert from a file, answers approvals as scripted, and stops at an approval nobody answered', async () => {
    const dir = await copyOfSamples();
    const tests = join(dir, 'more');
    await mkdir(tests);
    await writeFile(
      join(tests, 'unanswered.yaml'),
      `
alert: ${join(ROOT, 'examples', 'alerts', 'high-error-rate.json')}
stubs: { error_rate: { value: 0.2 } }
expect:
  status: cancelled
  steps: { tell_channel: taken, rollback: would ask approval, verify: not reached }
  approvals: [rollback]
  requests:
    rollback: { method: POST, url: https://deploy.internal/api/services/checkout/rollback }
`,
    );
    await writeFile(
      join(tests, 'expired-then-approved.yaml'),
      `
name: escalated after the first approval expired
alert: ../../../playbooks/../examples/alerts/high-error-rate.json
stubs: { error_rate: { value: 0.2 } }
approvals: { rollback: [expire, approve] }
expect: { status: succeeded, steps: { rollback: taken, report: taken } }
`.replace('../../../playbooks/../examples', join(ROOT, 'examples')),
    );
    const res = await test([tests, '--playbooks', dir]);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^ok {4}unanswered/m);
    expect(res.stdout).toMatch(/^ok {4}escalated after the first approval expired/m);
  });

  it('reports a wrong expectation, a bad file and a playbook that does not start, each by name', async () => {
    const dir = await copyOfSamples();
    const tests = join(dir, 'bad');
    await mkdir(tests);
    await writeFile(join(tests, 'a-wrong.yaml'), `
alert: { source: generic, fingerprint: f1, labels: { alertname: HighErrorRate, service: web, severity: critical }, startsAt: "2024-05-14T09:00:00Z" }
expect: { runs: [high-error-rate] }
`);
    await writeFile(join(tests, 'b-broken.yaml'), 'alert: {}\nexpect: { steps: { rollback: maybe } }\n');
    await writeFile(join(tests, 'c-missing.yaml'), `
playbook: high-latency-scale-out
alert: ${join(ROOT, 'examples', 'alerts', 'high-error-rate.json')}
expect: {}
`);
    const res = await test([tests, '--playbooks', dir]);
    expect(res.code).toBe(1);
    // A generic alert does not start high-error-rate (its trigger names alertmanager).
    expect(res.stdout).toContain('FAIL  a-wrong');
    expect(res.stdout).toMatch(/runs\n\s+- expected: \["high-error-rate"\]\n\s+\+ got:\s+none|runs\n\s+- expected: \["high-error-rate"\]\n\s+\+ got:\s+no playbook matches the alert/);
    expect(res.stderr).toMatch(/b-broken\.yaml: expect\.steps\.rollback: /);
    expect(res.stdout).toContain('FAIL  c-missing');
    expect(res.stdout).toContain('the alert does not start playbook high-latency-scale-out (it starts: high-error-rate)');
    expect(res.stderr).toContain('3 test file(s): 0 passed, 3 failed');
  });

  it('the committed schema/playbook-test.schema.json is generated from the zod schema', async () => {
    // Regenerate with: npx tsc && node dist/src/playbook-tests/write-schema.js
    expect(await readFile(join(ROOT, TEST_SCHEMA_PATH), 'utf8')).toBe(playbookTestJsonSchemaText());
  });
});
