/**
 * Running one playbook test: its alert goes through matching against the
 * folder's playbooks as a scripted dry run (every call stubbed, approvals
 * answered as the test says, nothing waited for), and what the run did is
 * checked against what the test expects. Each mismatch names its path
 * (`requests.rollback.url`), what was expected and what the run did.
 */
import { buildReport, isSettled, type RunJson, type RunReport, type TimelineJson } from '../replay/index.js';
import type { LoadedTest } from './spec.js';

/** Where the dry runs happen (an engine in this process, see src/app/local.ts). */
export interface DryRunBackend {
  /** POST /api/runs with `dryRun: true`, as the API takes it. */
  start(body: Record<string, unknown>): Promise<Array<{ runId: string; playbook: string }>>;
  run(id: string): Promise<RunJson>;
  timeline(id: string): Promise<TimelineJson>;
}

export interface Mismatch {
  path: string;
  expected: unknown;
  got: unknown;
}

export interface TestResult {
  file: string;
  name: string;
  /** The run under test (null when none started). */
  runId: string | null;
  playbook: string | null;
  mismatches: Mismatch[];
  /** The test could not run (a bad alert, a playbook that does not load). */
  error?: string;
}

export const passed = (r: TestResult) => !r.error && r.mismatches.length === 0;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The run's id reads as <run> (it differs on every run); a string body that is JSON is compared as JSON. */
function normalise(value: unknown, runId: string): unknown {
  if (typeof value === 'string') return value.split(runId).join('<run>');
  if (Array.isArray(value)) return value.map((v) => normalise(v, runId));
  if (isRecord(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalise(v, runId)]));
  return value;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Only the fields `expected` gives are compared, object by object; arrays and values compare whole. */
function compareFields(path: string, expected: unknown, got: unknown, out: Mismatch[]): void {
  if (isRecord(expected)) {
    let actual = got;
    if (typeof got === 'string' && /^\s*[{[]/.test(got)) {
      try {
        actual = JSON.parse(got);
      } catch {
        /* compared as text below */
      }
    }
    if (!isRecord(actual)) {
      out.push({ path, expected, got: got ?? '(absent)' });
      return;
    }
    for (const [k, v] of Object.entries(expected)) compareFields(`${path}.${k}`, v, actual[k], out);
    return;
  }
  if (!same(expected, got)) out.push({ path, expected, got: got === undefined ? '(absent)' : got });
}

const sorted = (xs: string[]) => [...new Set(xs)].sort();

/** The mismatches between what the test expects and what the run did. */
export function checkRun(test: LoadedTest, report: RunReport, started: string[]): Mismatch[] {
  const expect = test.spec.expect;
  const out: Mismatch[] = [];
  if (expect.runs && !same(sorted(expect.runs), sorted(started))) out.push({ path: 'runs', expected: sorted(expect.runs), got: sorted(started) });
  if (expect.status && expect.status !== report.status) out.push({ path: 'status', expected: expect.status, got: report.reason ? `${report.status} (${report.reason})` : report.status });
  const steps = new Map(report.steps.map((s) => [s.id, s]));
  for (const [id, outcome] of Object.entries(expect.steps ?? {})) {
    const s = steps.get(id);
    const got = s ? (s.outcome === 'pending' ? 'not reached' : s.outcome) : '(no such step)';
    if (got !== outcome) out.push({ path: `steps.${id}`, expected: outcome, got: s?.note && got !== '(no such step)' ? `${got} (${s.note})` : got });
  }
  if (expect.approvals) {
    const asked = report.steps.filter((s) => s.approval).map((s) => s.id);
    if (!same(sorted(expect.approvals), sorted(asked))) out.push({ path: 'approvals', expected: sorted(expect.approvals), got: sorted(asked) });
  }
  for (const [id, fields] of Object.entries(expect.requests ?? {})) {
    const s = steps.get(id);
    const rendered = s?.params ?? s?.requested;
    if (rendered === undefined) {
      out.push({ path: `requests.${id}`, expected: fields, got: s ? `no request: the step was ${s.outcome}` : '(no such step)' });
      continue;
    }
    compareFields(`requests.${id}`, fields, normalise(rendered, report.id), out);
  }
  return out;
}

/** Scripted answers as the API takes them: one per round. */
function answers(test: LoadedTest): Record<string, string[]> {
  return Object.fromEntries(Object.entries(test.spec.approvals).map(([k, v]) => [k, Array.isArray(v) ? v : [v]]));
}

/** The policy's `now`: the test's, else the alert's startsAt (the same answer on any day). */
function policyNow(test: LoadedTest): string | undefined {
  if (test.spec.now) return test.spec.now;
  const a = test.alert as { startsAt?: unknown; alerts?: Array<{ startsAt?: unknown }> } | null;
  const startsAt = a?.startsAt ?? a?.alerts?.[0]?.startsAt;
  return typeof startsAt === 'string' && !Number.isNaN(Date.parse(startsAt)) ? startsAt : undefined;
}

const looksNormalised = (a: unknown) => isRecord(a) && 'source' in a && 'fingerprint' in a;

async function settled(backend: DryRunBackend, id: string, timeoutMs: number): Promise<RunJson> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await backend.run(id);
    if (isSettled(run) || Date.now() > deadline) return run;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Run one test: start its dry run(s), wait for them to end (they never wait on anyone), check. */
export async function runTest(test: LoadedTest, playbooks: Array<{ file: string; source: string }>, backend: DryRunBackend, timeoutMs = 60_000): Promise<TestResult> {
  const base = { file: test.file, name: test.name, runId: null, playbook: null, mismatches: [] } satisfies TestResult;
  const now = policyNow(test);
  let started: Array<{ runId: string; playbook: string }>;
  try {
    started = await backend.start({
      dryRun: true,
      alert: test.alert,
      ...(!looksNormalised(test.alert) && { source: test.spec.source ?? 'alertmanager' }),
      playbooks,
      // Hermetic: every call is stubbed, approvals are scripted, nothing is waited for, nothing is posted.
      noGather: true,
      noWait: true,
      quiet: true,
      answers: answers(test),
      stubs: test.spec.stubs,
      ...(now && { policyNow: now }),
    });
  } catch (e) {
    return { ...base, error: (e as Error).message };
  }
  const names = started.map((r) => r.playbook);
  const target = test.spec.playbook ? started.find((r) => r.playbook === test.spec.playbook) : started.length === 1 ? started[0] : undefined;
  if (!target) {
    const why = test.spec.playbook
      ? `the alert does not start playbook ${test.spec.playbook} (it starts: ${names.join(', ') || 'none'})`
      : started.length === 0
        ? 'no playbook matches the alert'
        : `the alert starts ${names.join(', ')}: name the one under test with \`playbook:\``;
    return { ...base, mismatches: [{ path: test.spec.playbook ? 'playbook' : 'runs', expected: test.spec.playbook ?? test.spec.expect.runs ?? 'one run', got: why }] };
  }
  const run = await settled(backend, target.runId, timeoutMs);
  const report = buildReport(run, await backend.timeline(target.runId));
  return { ...base, runId: target.runId, playbook: target.playbook, mismatches: checkRun(test, report, names) };
}
