import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A temporary playbooks folder holding the given YAML files (name -> content). */
export async function playbooksDir(files: Record<string, string>, scripts: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fb-playbooks-'));
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  if (Object.keys(scripts).length > 0) {
    await mkdir(join(dir, 'scripts'));
    for (const [name, content] of Object.entries(scripts)) {
      await writeFile(join(dir, 'scripts', name), content);
      await chmod(join(dir, 'scripts', name), 0o755);
    }
  }
  return dir;
}

/** A generic alert body. */
export function genericAlert(labels: Record<string, string>, extra: Record<string, unknown> = {}) {
  return { labels, annotations: { summary: `${labels.alertname} on ${labels.service ?? 'x'}` }, startsAt: new Date().toISOString(), ...extra };
}

/**
 * A playbook of one high-impact `note` step, started by alerts named
 * `alertname`: the sample policy asks one SRE to approve it, so a run waits
 * for an answer (identity and access tests).
 */
export function oneApprovalPlaybook(name: string, alertname: string): Record<string, string> {
  return {
    [`${name}.yaml`]: `
name: ${name}
triggers:
  - matchers: ['alertname="${alertname}"']
steps:
  - id: change
    action: note
    impact: high
    with: { text: "changing" }
`,
  };
}
