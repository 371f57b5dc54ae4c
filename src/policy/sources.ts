/**
 * The bundle's freshness: `npm run policy:build` writes bundle.sources.sha256,
 * one `sha256sum`-style line per source (the Rego outside tests, and
 * data.json), and stamps sha256 of that file into the bundle's `.manifest`
 * revision. The check recomputes the lines, names what changed, and checks
 * the bundle carries the same stamp. It needs no opa.
 *
 * scripts/build-policy.mjs computes the same listing (plain JS, so building
 * policies needs no TypeScript build); test/policy checks the two agree.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BUNDLE_FILE, describeError, readBundleFile, sha256 } from './bundle.js';

export const SOURCES_FILE = 'bundle.sources.sha256';

export interface Freshness {
  fresh: boolean;
  /** sha256 of the listing computed from the files on disk now. */
  sourcesHash: string;
  /** What disagrees, one line each, naming the file; empty when fresh. */
  problems: string[];
}

/** Bundle sources under `dir`, relative with `/`, sorted by code unit (as the build script sorts). */
export async function listSources(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(rel: string): Promise<void> {
    for (const entry of await readdir(join(dir, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!entry.name.startsWith('.') && entry.name !== 'node_modules') await walk(path);
      } else if (entry.isFile() && entry.name.endsWith('.rego') && !entry.name.endsWith('_test.rego')) {
        out.push(path);
      }
    }
  }
  await walk('');
  out.push('data.json');
  return out.sort();
}

/** The listing as the build writes it: `<sha256>  <path>\n` per source. */
export async function sourcesListing(dir: string): Promise<string> {
  let text = '';
  for (const path of await listSources(dir)) text += `${sha256(await readFile(join(dir, path)))}  ${path}\n`;
  return text;
}

function parseListing(text: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (m) files.set(m[2]!, m[1]!);
  }
  return files;
}

export async function checkBundleFreshness(dir: string): Promise<Freshness> {
  let listing: string;
  try {
    listing = await sourcesListing(dir);
  } catch (e) {
    return { fresh: false, sourcesHash: 'none', problems: [`cannot read the policy sources in ${dir}: ${describeError(e)}`] };
  }
  const sourcesHash = sha256(listing);
  const problems: string[] = [];

  let committed: string | undefined;
  try {
    committed = await readFile(join(dir, SOURCES_FILE), 'utf8');
  } catch {
    problems.push(`${SOURCES_FILE} is missing`);
  }
  if (committed !== undefined && committed !== listing) {
    const then = parseListing(committed);
    const now = parseListing(listing);
    for (const [path, hash] of now) {
      if (!then.has(path)) problems.push(`${path} is new since the bundle was built`);
      else if (then.get(path) !== hash) problems.push(`${path} changed since the bundle was built`);
    }
    for (const path of then.keys()) if (!now.has(path)) problems.push(`${path} was removed since the bundle was built`);
    if (problems.length === 0) problems.push(`${SOURCES_FILE} is not in the format the build writes`);
  }

  try {
    const bundle = await readBundleFile(join(dir, BUNDLE_FILE));
    const stamped = committed === undefined ? undefined : sha256(committed);
    if (stamped !== undefined && bundle.revision !== stamped) {
      problems.push(`${BUNDLE_FILE} was not built from the sources in ${SOURCES_FILE} (its revision is ${bundle.revision ?? 'missing'}, expected ${stamped})`);
    }
  } catch (e) {
    problems.push(describeError(e));
  }
  return { fresh: problems.length === 0, sourcesHash, problems };
}
