#!/usr/bin/env node
/**
 * npm run policy:build — compile policies/ into the committed bundle.
 *
 *   node scripts/build-policy.mjs [dir]          build dir/bundle.tgz (default: policies)
 *   node scripts/build-policy.mjs --check [dir]  only check the bundle is fresh (exit 1 if not)
 *
 * The bundle is `opa build -t wasm` over the Rego sources (not *_test.rego)
 * and data.json, with entry points firebreak/decision, firebreak/approve and firebreak/authorize.
 * Beside it goes bundle.sources.sha256: one `sha256sum` line per source,
 * sorted; sha256 of that file is stamped into the bundle as its revision.
 * src/policy/sources.ts recomputes the same listing at check time (plain JS
 * here so building policies needs no TypeScript build; a test keeps them in step).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { extract } from 'tar-stream';

const ENTRYPOINTS = ['firebreak/decision', 'firebreak/approve', 'firebreak/authorize'];
const BUNDLE_FILE = 'bundle.tgz';
const SOURCES_FILE = 'bundle.sources.sha256';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

async function listSources(dir) {
  const out = [];
  async function walk(rel) {
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

async function sourcesListing(dir, sources) {
  let text = '';
  for (const path of sources) text += `${sha256(await readFile(join(dir, path)))}  ${path}\n`;
  return text;
}

/** The opa CLI: scripts/install-opa.sh installs it if needed (with Go) and prints its path. */
function findOpa() {
  try {
    return execFileSync('sh', [join(root, 'scripts/install-opa.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  } catch {
    try {
      execFileSync('opa', ['version'], { stdio: 'ignore' });
      console.error('build-policy: using opa from PATH (not the pinned version)');
      return 'opa';
    } catch {
      throw new Error('opa is needed to build policies: install Go, then run scripts/install-opa.sh');
    }
  }
}

async function build(dir) {
  const sources = await listSources(dir);
  if (!existsSync(join(dir, 'data.json'))) throw new Error(`${dir}/data.json is missing`);
  const listing = await sourcesListing(dir, sources);
  const revision = sha256(listing);
  const opa = findOpa();

  // Build into a temp file, then rename: a running bot watching the folder never sees half a bundle.
  const tmp = await mkdtemp(join(tmpdir(), 'firebreak-policy-'));
  try {
    const out = join(tmp, BUNDLE_FILE);
    const args = ['build', '-t', 'wasm', ...ENTRYPOINTS.flatMap((e) => ['-e', e]), '--revision', revision, '-o', out, ...sources];
    console.error(`build-policy: ${opa} ${args.join(' ')}`);
    // Relative paths from inside dir keep the bundle independent of where the checkout lives.
    execFileSync(opa, args, { cwd: dir, stdio: 'inherit' });
    await writeFile(join(dir, SOURCES_FILE), listing);
    await rename(out, join(dir, BUNDLE_FILE)).catch(async () => {
      // rename across file systems fails; copy next to the target, then rename there.
      await writeFile(join(dir, `.${BUNDLE_FILE}.tmp`), await readFile(out));
      await rename(join(dir, `.${BUNDLE_FILE}.tmp`), join(dir, BUNDLE_FILE));
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  console.error(`build-policy: wrote ${join(dir, BUNDLE_FILE)} (sources ${revision}) from ${sources.length} files`);
}

/** The bundle's `.manifest` revision, or undefined. */
async function bundleRevision(file) {
  const ex = extract();
  let revision;
  const done = (async () => {
    for await (const entry of ex) {
      const chunks = [];
      for await (const c of entry) chunks.push(c);
      if (entry.header.name.replace(/^\/+/, '') === '.manifest') revision = JSON.parse(Buffer.concat(chunks).toString('utf8')).revision;
    }
  })();
  ex.end(gunzipSync(await readFile(file)));
  await done;
  return revision;
}

/** The freshness check without opa, for CI (`firebreak policy test` runs it too, with the Rego tests). */
async function check(dir) {
  const listing = await sourcesListing(dir, await listSources(dir));
  const committed = existsSync(join(dir, SOURCES_FILE)) ? await readFile(join(dir, SOURCES_FILE), 'utf8') : '';
  const revision = existsSync(join(dir, BUNDLE_FILE)) ? await bundleRevision(join(dir, BUNDLE_FILE)).catch(() => undefined) : undefined;
  if (committed === listing && revision === sha256(listing)) {
    console.error(`build-policy: bundle is fresh (sources ${revision})`);
    return true;
  }
  const why = committed !== listing ? `${SOURCES_FILE} does not match the sources` : `${BUNDLE_FILE} was not built from them`;
  console.error(`build-policy: ${dir}: ${why}: run npm run policy:build and commit ${dir}`);
  return false;
}

const args = process.argv.slice(2);
const checkOnly = args.includes('--check');
const dir = resolve(args.find((a) => !a.startsWith('--')) ?? join(root, 'policies'));
try {
  if (checkOnly) process.exitCode = (await check(dir)) ? 0 : 1;
  else await build(dir);
} catch (e) {
  console.error(`build-policy: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
}
