/** `firebreak test [dir] [--playbooks <dir>] [--json]`: run the playbook tests, print a diff per failure, exit 1 on any. */
import { basename, dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatProblem, isError, validatePlaybooks, type ActionCatalog } from '../playbooks/index.js';
import { readPlaybookFolder } from '../replay/index.js';
import { runTest, passed, type DryRunBackend, type TestResult } from './run.js';
import { loadTests } from './spec.js';

export interface TestCommandDeps {
  out(text: string): void;
  err(text: string): void;
  fail(message: string): Error;
  /** FIREBREAK_PLAYBOOKS: the default tests folder is its `tests/`. */
  playbooksDir: string;
  /** The actions a playbooks folder can use (built-ins and its `actions/`). */
  actions(playbooksDir: string): Promise<ActionCatalog>;
  /** An engine to run the dry runs on (started once, closed at the end). */
  backend(playbooksDir: string): Promise<DryRunBackend & { label: string; close(): Promise<void> }>;
}

export const TEST_USAGE = 'usage: firebreak test [dir] [--playbooks <dir>] [--json]   (dir: default <FIREBREAK_PLAYBOOKS>/tests; playbooks: default the folder above dir)';

const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

/** One result as text: ok, or FAIL with each mismatch as expected (-) and got (+). */
export function formatResult(r: TestResult): string {
  const where = `${basename(r.file)}${r.runId ? `, dry run ${r.runId}` : ''}`;
  if (passed(r)) return `ok    ${r.name} (${where})`;
  const lines = [`FAIL  ${r.name} (${where})`];
  if (r.error) lines.push(...r.error.split('\n').map((l) => `        ${l}`));
  for (const m of r.mismatches) {
    lines.push(`        ${m.path}`);
    lines.push(`          - expected: ${show(m.expected)}`);
    lines.push(`          + got:      ${show(m.got)}`);
  }
  return lines.join('\n');
}

export async function testCommand(args: string[], deps: TestCommandDeps): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { playbooks: { type: 'string' }, json: { type: 'boolean', default: false } } });
  if (positionals.length > 1) throw deps.fail(TEST_USAGE);
  const dir = positionals[0] ?? `${deps.playbooksDir.replace(/\/+$/, '')}/tests`;
  const playbooksDir = values.playbooks ?? dirname(resolve(dir));
  const { tests, problems } = await loadTests(dir);
  for (const p of problems) deps.err(p.message.startsWith(p.file) ? p.message : `${p.file}: ${p.message}`);
  if (tests.length === 0 && problems.length === 0) throw deps.fail(`no playbook tests (*.yaml) in ${dir}`);
  // The playbooks must load before anything is tested: one clear list instead of the same error per test.
  const broken = (await validatePlaybooks(playbooksDir, await deps.actions(playbooksDir))).filter(isError);
  if (broken.length > 0) {
    for (const p of broken) deps.err(formatProblem(p));
    throw deps.fail(`the playbooks in ${playbooksDir} have ${broken.length} problem(s); fix them first (firebreak validate ${playbooksDir})`);
  }
  const sent = await readPlaybookFolder(playbooksDir, deps, '--playbooks');
  const results: TestResult[] = [];
  if (tests.length > 0) {
    const backend = await deps.backend(playbooksDir);
    try {
      deps.err(`running ${tests.length} playbook test(s) from ${dir} against ${playbooksDir} (${backend.label})`);
      for (const test of tests) {
        const result = await runTest(test, sent, backend);
        results.push(result);
        if (!values.json) deps.out(formatResult(result));
      }
    } finally {
      await backend.close();
    }
  }
  const failed = results.filter((r) => !passed(r)).length + problems.length;
  if (values.json) deps.out(JSON.stringify({ dir, playbooks: playbooksDir, results: results.map((r) => ({ ...r, passed: passed(r) })), problems }, null, 2));
  const summary = `${results.length + problems.length} test file(s): ${results.length - (failed - problems.length)} passed, ${failed} failed`;
  if (failed > 0) {
    deps.err(summary);
    return 1;
  }
  deps.err(summary);
  return 0;
}
