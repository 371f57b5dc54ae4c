import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { FirebreakError } from '../errors.js';
import { packageRoot } from './paths.js';
import { withTransaction } from './transaction.js';

/** Arbitrary constant shared by every Firebreak replica: only one migrates at a time. */
const MIGRATION_LOCK_ID = 727_001;

/**
 * Numbers that were never used (0004, 0006 were folded into their neighbours
 * before release). Any other hole in the numbering means a file is missing
 * from this copy of the code.
 */
export const KNOWN_MIGRATION_GAPS: readonly number[] = [4, 6];

export function migrationsDir(): string {
  return join(packageRoot(), 'src', 'store', 'migrations');
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
  /** sha256 (hex) of the file with line endings normalised, so a CRLF checkout is the same file. */
  checksum: string;
}

/** A migration file changed after it was applied, or an applied one is missing: the schema cannot be trusted. */
export class MigrationMismatchError extends FirebreakError {
  readonly code = 'migration_mismatch';
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message);
  }
}

export function migrationChecksum(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n?/g, '\n')).digest('hex');
}

export async function readMigrations(dir = migrationsDir()): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      const sql = await readFile(join(dir, file), 'utf8');
      return { version: Number(file.slice(0, 4)), name: file, sql, checksum: migrationChecksum(sql) };
    }),
  );
}

/** Holes in the numbering that are not known, e.g. a file left out of an image. */
export function unexpectedGaps(migrations: readonly Migration[]): number[] {
  const versions = new Set(migrations.map((m) => m.version));
  const highest = Math.max(0, ...versions);
  const gaps: number[] = [];
  for (let v = 1; v < highest; v++) if (!versions.has(v) && !KNOWN_MIGRATION_GAPS.includes(v)) gaps.push(v);
  return gaps;
}

export interface MigrateOptions {
  /** Told about holes in the numbering that are not known gaps (logged by the app). */
  onWarning?: (message: string) => void;
  /** Another folder of migrations (tests). */
  dir?: string;
}

/**
 * Apply pending numbered migrations in one transaction under an advisory lock,
 * so replicas starting together end with one schema and a failure leaves none
 * half-applied. Every applied file's checksum is recorded; a file that changed
 * after it was applied, or an applied file that is missing, stops start-up with
 * a MigrationMismatchError naming the file. Returns the names applied by this call.
 */
export async function migrate(pool: pg.Pool, options: MigrateOptions = {}): Promise<string[]> {
  const migrations = await readMigrations(options.dir);
  const gaps = unexpectedGaps(migrations);
  if (gaps.length > 0) options.onWarning?.(`migration numbers ${gaps.map((g) => String(g).padStart(4, '0')).join(', ')} are missing from ${options.dir ?? migrationsDir()}`);
  return withTransaction(pool, async (client) => {
    await client.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID]);
    await client.query(`create table if not exists firebreak_migrations (
      version integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`);
    // Checksums came after 0001-0007 were released: those rows get theirs on the first start that knows them.
    await client.query('alter table firebreak_migrations add column if not exists checksum text');
    const { rows } = await client.query<{ version: number; name: string; checksum: string | null }>('select version, name, checksum from firebreak_migrations order by version');
    const byVersion = new Map(migrations.map((m) => [m.version, m]));
    for (const row of rows) {
      const file = byVersion.get(row.version);
      if (!file) {
        throw new MigrationMismatchError(
          `migration ${row.name} was applied to this database but is not in ${options.dir ?? migrationsDir()}: this code is older than the database, or the file was deleted`,
          row.name,
        );
      }
      if (row.checksum === null) {
        await client.query('update firebreak_migrations set checksum = $2 where version = $1', [row.version, file.checksum]);
      } else if (row.checksum !== file.checksum) {
        throw new MigrationMismatchError(
          `migration ${file.name} changed after it was applied (checksum ${row.checksum.slice(0, 12)} in the database, ${file.checksum.slice(0, 12)} on disk): applied migrations are never edited; put the change in a new numbered file`,
          file.name,
        );
      }
    }
    const applied = new Set(rows.map((r) => r.version));
    const done: string[] = [];
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query('insert into firebreak_migrations (version, name, checksum) values ($1, $2, $3)', [migration.version, migration.name, migration.checksum]);
      done.push(migration.name);
    }
    return done;
  });
}
