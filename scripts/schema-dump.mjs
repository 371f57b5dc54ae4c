#!/usr/bin/env node
/**
 * npm run schema:dump — migrate a fresh database and write what the migrations
 * built to schema/schema.sql (read back from the catalog, see
 * src/store/schema-dump.ts). `--check` only compares and exits 1 when the
 * committed file is stale; CI runs that.
 *
 * Postgres: the server in DATABASE_URL (a throwaway `fb_schema_<random>`
 * database is created and dropped there), else a temporary embedded cluster.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { createPool, dumpSchema, migrate, startEmbeddedPostgres } = await import(join(root, 'dist', 'src', 'store', 'index.js'));
const check = process.argv.includes('--check');
const file = join(root, 'schema', 'schema.sql');

let adminUrl = process.env.DATABASE_URL;
let embedded;
let embeddedDir;
if (!adminUrl) {
  embeddedDir = await mkdtemp(join(tmpdir(), 'fb-schema-pg-'));
  await chmod(embeddedDir, 0o755);
  embedded = await startEmbeddedPostgres({ dataDir: embeddedDir, log: () => {} });
  adminUrl = embedded.url;
}
const name = `fb_schema_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`create database ${name}`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;
const pool = createPool(url.toString(), undefined, 2);
let status = 0;
try {
  await migrate(pool);
  const dumped = await dumpSchema(pool);
  if (check) {
    const committed = await readFile(file, 'utf8').catch(() => '');
    if (committed !== dumped) {
      console.error('schema/schema.sql is stale: the migrations build a different schema. Run `npm run schema:dump` and commit the file.');
      status = 1;
    } else {
      console.log('schema/schema.sql matches the migrations');
    }
  } else {
    await writeFile(file, dumped);
    console.log(`wrote ${file}`);
  }
} finally {
  await pool.end();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
  if (embedded) await embedded.stop();
  if (embeddedDir) await rm(embeddedDir, { recursive: true, force: true });
}
process.exit(status);
