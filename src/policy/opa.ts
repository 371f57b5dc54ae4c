/**
 * The `opa` CLI, for policy authors and CI only (the bot never needs it):
 * found where scripts/install-opa.sh puts it, else on PATH.
 */
import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describeError } from './bundle.js';
import { checkBundleFreshness } from './sources.js';

export const OPA_VERSION = 'v1.22.2';

/** Where scripts/install-opa.sh installs opa. */
export function installedOpaPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.FIREBREAK_CACHE || join(homedir(), '.cache', 'firebreak'), `opa-${OPA_VERSION}`, 'opa');
}

export async function findOpa(): Promise<string | undefined> {
  const installed = installedOpaPath();
  try {
    await access(installed, constants.X_OK);
    return installed;
  } catch {
    // fall through to PATH
  }
  const probe = await run('opa', ['version']);
  return probe.exitCode === 0 ? 'opa' : undefined;
}

export interface CommandResult {
  exitCode: number;
  output: string;
}

function run(cmd: string, args: string[], timeoutMs = 300_000): Promise<CommandResult> {
  return new Promise((resolve) => {
    let output = '';
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', (e) => resolve({ exitCode: 127, output: `${cmd}: ${describeError(e)}\n` }));
    child.on('close', (code, signal) => resolve({ exitCode: code ?? 1, output: signal ? `${output}${cmd} killed by ${signal}\n` : output }));
  });
}

/**
 * `firebreak policy test`: the Rego unit tests (`opa test`) and the bundle
 * freshness check. Exit code 0 only when both pass; output is for people.
 */
export async function runPolicyTests(dir: string): Promise<CommandResult> {
  let output = '';
  let ok = true;

  const opa = await findOpa();
  if (!opa) {
    ok = false;
    output += `opa ${OPA_VERSION} not found: install it with scripts/install-opa.sh (needs Go)\n`;
  } else {
    const tests = await run(opa, ['test', '-v', dir]);
    output += tests.output;
    if (tests.exitCode !== 0) {
      ok = false;
      output += `opa test failed (exit ${tests.exitCode})\n`;
    }
  }

  const freshness = await checkBundleFreshness(dir);
  if (freshness.fresh) {
    output += `bundle is fresh (sources ${freshness.sourcesHash})\n`;
  } else {
    ok = false;
    output += `bundle is stale:\n${freshness.problems.map((p) => `  ${p}\n`).join('')}rebuild with npm run policy:build and commit ${dir}\n`;
  }
  return { exitCode: ok ? 0 : 1, output };
}
