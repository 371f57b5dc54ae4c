/**
 * The demo runs copies of the sample playbooks whose only change is the base
 * URL of what they call: `http://prometheus:9090`, `https://deploy.internal`
 * and `https://kubernetes.default.svc` become the local stand-ins.
 *
 * Why copies rather than a host mapping inside the HTTP client: the server
 * a production user runs has no demo switch at all (nothing in an alert, a
 * playbook or the environment can redirect a call), and the copies are plain
 * files in the demo's folder that a reader can open and diff against the
 * originals.
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface BaseUrls {
  prometheus: string;
  deploy: string;
  kubernetes: string;
}

/** The origins the sample playbooks call in production. */
export const PRODUCTION_ORIGINS: Record<keyof BaseUrls, string> = {
  prometheus: 'http://prometheus:9090',
  deploy: 'https://deploy.internal',
  kubernetes: 'https://kubernetes.default.svc',
};

export interface DemoPlaybooks {
  dir: string;
  copied: string[];
  /** Sample playbooks left out, with why. */
  skipped: Array<{ file: string; why: string }>;
}

/** Copy of one playbook's text pointed at the stand-ins. */
export function pointAtStandIns(text: string, urls: BaseUrls): string {
  let out = text;
  for (const key of Object.keys(PRODUCTION_ORIGINS) as Array<keyof BaseUrls>) out = out.split(PRODUCTION_ORIGINS[key]).join(urls[key]);
  return out;
}

/**
 * Write the demo copies into `<demoDir>/playbooks`. A playbook that runs a
 * script (`exec`) is left out: it would act on this machine, not a stand-in.
 */
export async function writeDemoPlaybooks(samplesDir: string, demoDir: string, urls: BaseUrls): Promise<DemoPlaybooks> {
  const dir = join(demoDir, 'playbooks');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const copied: string[] = [];
  const skipped: DemoPlaybooks['skipped'] = [];
  for (const file of (await readdir(samplesDir)).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    const text = await readFile(join(samplesDir, file), 'utf8');
    if (/^\s*action:\s*exec\b/m.test(text)) {
      skipped.push({ file, why: 'it runs a script on the machine itself' });
      continue;
    }
    const header = `# Demo copy of playbooks/${file}: the only change is the base URL of each call (the demo's local stand-ins).\n`;
    await writeFile(join(dir, file), header + pointAtStandIns(text, urls));
    copied.push(file);
  }
  return { dir, copied, skipped };
}
