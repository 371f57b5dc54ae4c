/** The shipped policy lets the shipped playbooks' exec steps run: the allow-list names their scripts. */
import { readFile, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { expect, it } from 'vitest';
import { evaluatePolicy } from '../../src/policy/index.js';
import { POLICIES, decisionInput } from './helpers.js';

const PLAYBOOKS = resolve(import.meta.dirname, '../../playbooks');

it('allows every exec script the sample playbooks use', async () => {
  const scripts = new Set<string>();
  for (const file of (await readdir(PLAYBOOKS)).filter((f) => /\.ya?ml$/.test(f))) {
    const doc = parse(await readFile(join(PLAYBOOKS, file), 'utf8')) as { steps?: Array<{ action?: string; with?: { script?: string } }> };
    for (const step of doc.steps ?? []) if (step.action === 'exec' && step.with?.script) scripts.add(step.with.script);
  }
  for (const script of scripts) {
    const r = await evaluatePolicy(POLICIES, 'firebreak/decision', decisionInput({ id: 'x', action: 'exec', params: { script }, target: script }));
    expect({ script, allow: r.result.allow, reasons: r.result.reasons }).toMatchObject({ script, allow: true });
  }
});
