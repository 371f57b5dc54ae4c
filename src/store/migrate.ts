import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { packageRoot } from './paths.js';
import { withTransaction } from './transaction.js';

/** Arbitrary constant shared by every Firebreak replica: only one migrates at a time. */
const MIGRATION_LOCK_ID = 727_001;

export function migrationsDir(): string {
  return join(packageRoot(), 'src', 'store', 'migrations');
}

interface Migration {
  version: number;
  name: string;
  sql: string;
}

async function readMigrations(): Promise<Migration[]> {
  const files = (await readdir(migrationsDir())).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: Number(file.slice(0, 4)),
      name: file,
      sql: await readFile(join(migrationsDir(), file), 'utf8'),
    })),
  );
}

/**
 * Apply pending numbered migrations in one transaction under an advisory lock,
 * so replicas starting together end with one schema and a failure leaves none
 * half-applied. Returns the names applied by this call.
 */
export async function migrate(pool: pg.Pool): Promise<string[]> {
  const migrations = await readMigrations();
  return withTransaction(pool, async (client) => {
    await client.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID]);
    await client.query(`create table if not exists firebreak_migrations (
      version integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`);
    const { rows } = await client.query<{ version: number }>('select version from firebreak_migrations');
    const applied = new Set(rows.map((r) => r.version));
    const done: string[] = [];
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query('insert into firebreak_migrations (version, name) values ($1, $2)', [migration.version, migration.name]);
      done.push(migration.name);
    }
    return done;
  });
}
