/**
 * Shared by the timeline and console tests: a temporary playbooks folder and
 * a generic alert body.
 */
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A temporary playbooks folder: YAML files, and executable scripts under scripts/. */
export async function writePlaybooks(files: Record<string, string>, scripts: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fb-timeline-'));
  await mkdir(join(dir, 'scripts'));
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  for (const [name, content] of Object.entries(scripts)) {
    await writeFile(join(dir, 'scripts', name), content);
    await chmod(join(dir, 'scripts', name), 0o755);
  }
  return dir;
}

export function alertBody(labels: Record<string, string>, extra: Record<string, unknown> = {}) {
  return { labels, annotations: { summary: `${labels.alertname} on ${labels.service ?? 'a service'}` }, startsAt: new Date().toISOString(), ...extra };
}

