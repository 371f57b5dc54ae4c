/**
 * Reading and loading the compiled bundle (`opa build -t wasm` output): a
 * tar.gz holding `/policy.wasm`, `/data.json` and `/.manifest`. Every failure
 * is a BundleError whose message says what broke, for status() and the timeline.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { extract } from 'tar-stream';
import { SUPPORTED_BUILTINS, customBuiltins } from './builtins.js';

/** Not `*.tar.gz`: opa test/eval/check load any *.tar.gz under a folder as a bundle, and `opa test policies/` must keep working. */
export const BUNDLE_FILE = 'bundle.tgz';
export const DECISION = 'firebreak/decision';
export const APPROVE = 'firebreak/approve';
export const AUTHORIZE = 'firebreak/authorize';
export const ENTRYPOINTS = [DECISION, APPROVE, AUTHORIZE] as const;
export type Entrypoint = (typeof ENTRYPOINTS)[number];

/** Real bundles are a few hundred KiB; anything near this is not one (or is a gzip bomb). */
const MAX_BYTES = 64 * 1024 * 1024;

export class BundleError extends Error {
  override readonly name = 'BundleError';
}

export interface BundleFiles {
  /** sha256 of the bundle file as stored on disk. */
  hash: string;
  wasm: Uint8Array;
  data: Record<string, unknown>;
  /** `.manifest` revision: the sources hash written by `npm run policy:build`. */
  revision?: string;
}

export interface LoadedBundle {
  policy: LoadedPolicy;
  hash: string;
  revision?: string;
}

export const sha256 = (bytes: string | Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** opa-wasm throws strings and plain objects as well as Errors. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'string') return e;
  if (e !== null && typeof e === 'object' && 'message' in e && typeof e.message === 'string') return e.message;
  try {
    return JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
}

export async function readBundleFile(file: string): Promise<BundleFiles> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BundleError(
      code === 'ENOENT' ? `no policy bundle at ${file} (build it with npm run policy:build)` : `cannot read ${file}: ${describeError(e)}`,
    );
  }
  return parseBundle(bytes);
}

export async function parseBundle(bytes: Uint8Array): Promise<BundleFiles> {
  const hash = sha256(bytes);
  const where = `bundle ${hash.slice(0, 12)}`;
  if (bytes.byteLength > MAX_BYTES) throw new BundleError(`${where} is ${bytes.byteLength} bytes, over the ${MAX_BYTES} limit`);
  let tar: Buffer;
  try {
    tar = gunzipSync(bytes, { maxOutputLength: MAX_BYTES });
  } catch (e) {
    throw new BundleError(`${where} is not a readable tar.gz: ${describeError(e)}`);
  }
  let entries: Map<string, Buffer>;
  try {
    entries = await untar(tar);
  } catch (e) {
    throw new BundleError(`${where} is not a readable tar.gz: ${describeError(e)}`);
  }

  const wasm = entries.get('policy.wasm');
  if (!wasm) throw new BundleError(`${where} has no policy.wasm (build it with opa build -t wasm)`);

  // OPA mounts <dir>/data.json at data.<dir...>; our build only writes the root one.
  const data: Record<string, unknown> = {};
  for (const [name, content] of entries) {
    if (name !== 'data.json' && !name.endsWith('/data.json')) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(content.toString('utf8'));
    } catch (e) {
      throw new BundleError(`${where}: ${name} is not valid JSON: ${describeError(e)}`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new BundleError(`${where}: ${name} must hold a JSON object`);
    mount(data, name.split('/').slice(0, -1), parsed as Record<string, unknown>);
  }

  let revision: string | undefined;
  const manifest = entries.get('.manifest');
  if (manifest) {
    try {
      const m = JSON.parse(manifest.toString('utf8')) as { revision?: unknown };
      if (typeof m.revision === 'string' && m.revision !== '') revision = m.revision;
    } catch (e) {
      throw new BundleError(`${where}: .manifest is not valid JSON: ${describeError(e)}`);
    }
  }
  return { hash, wasm, data, ...(revision ? { revision } : {}) };
}

/** Instantiate the wasm, check it can answer every entry point, and give it its data. */
export async function loadBundle(files: BundleFiles): Promise<LoadedBundle> {
  const where = `bundle ${files.hash.slice(0, 12)}`;
  let policy: LoadedPolicy;
  try {
    policy = await loadPolicy(files.wasm, undefined, customBuiltins);
  } catch (e) {
    throw new BundleError(`${where}: policy.wasm does not load: ${describeError(e)}`);
  }
  const has = Object.keys(policy.entrypoints as Record<string, number>);
  for (const ep of ENTRYPOINTS) {
    if (!has.includes(ep)) throw new BundleError(`${where} has no entry point ${ep} (it has: ${has.join(', ') || 'none'})`);
  }
  // Unsupported built-ins would only fail when a rule reaches them; refuse the bundle now instead.
  const missing = requiredBuiltins(policy).filter((b) => !SUPPORTED_BUILTINS.has(b));
  if (missing.length > 0) throw new BundleError(`${where} calls built-ins the wasm runtime lacks: ${missing.join(', ')}`);
  try {
    policy.setData(files.data);
  } catch (e) {
    throw new BundleError(`${where}: data.json does not load into the policy: ${describeError(e)}`);
  }
  return { policy, hash: files.hash, ...(files.revision ? { revision: files.revision } : {}) };
}

/** Built-ins the module imports from the host, via the wasm ABI (`builtins()` + `opa_json_dump`). */
function requiredBuiltins(policy: LoadedPolicy): string[] {
  const exports = (policy.wasmInstance as unknown as { exports: Record<string, (...a: number[]) => number> }).exports;
  const addr = exports.opa_json_dump!(exports.builtins!());
  const mem = new Uint8Array(policy.mem.buffer);
  let end = addr;
  while (mem[end] !== 0) end++;
  return Object.keys(JSON.parse(new TextDecoder().decode(mem.subarray(addr, end))) as Record<string, number>);
}

async function untar(tar: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const ex = extract();
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      if (entry.header.type === 'file') out.set(entry.header.name.replace(/^\.?\/+/, ''), Buffer.concat(chunks));
    }
  })();
  ex.end(tar);
  await done;
  return out;
}

function mount(root: Record<string, unknown>, path: string[], value: Record<string, unknown>): void {
  let node = root;
  for (const key of path) {
    const next = node[key];
    node = next !== null && typeof next === 'object' && !Array.isArray(next) ? (next as Record<string, unknown>) : (node[key] = {});
  }
  Object.assign(node, value);
}
