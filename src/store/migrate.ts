import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { MigrationError } from '../errors.js';
import { PgCode, pgErrorCode } from './errors.js';
import { packageRoot } from './paths.js';
import { withTransaction } from './transaction.js';

/** Arbitrary constant shared by every Firebreak replica: only one migrates at a time. */
const MIGRATION_LOCK_ID = 727_001;

/**
 * Numbers that were never used: 0004 and 0006 were folded into their
 * neighbours before release, and 0013 and 0015-0024 were blocks handed to work
 * that landed under other numbers. Any other hole in the numbering means a
 * file is missing from this copy of the code (reported as a warning: numbers
 * are handed out in blocks, so a hole can also be a block not merged yet).
 */
export const KNOWN_MIGRATION_GAPS: readonly number[] = [4, 6, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24];

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
export class MigrationMismatchError extends MigrationError {
  constructor(
    message: string,
    readonly file: string,
  ) {
    super(message, []);
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

/** Holes in the numbering that are not known gaps, e.g. a file left out of an image. */
export function unexpectedGaps(migrations: readonly Pick<Migration, 'version'>[]): number[] {
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

interface AppliedRow {
  version: number;
  name: string;
  checksum: string | null;
}

/** Migrations already applied, or null when the database has never been migrated. Reads only: no DDL. */
async function appliedMigrations(db: pg.Pool | pg.PoolClient): Promise<Map<number, AppliedRow> | null> {
  const { rows } = await db.query<{ exists: boolean; has_checksum: boolean }>(
    `select to_regclass('firebreak_migrations') is not null as exists,
            exists (select 1 from information_schema.columns where table_name = 'firebreak_migrations' and column_name = 'checksum' and table_schema = current_schema()) as has_checksum`,
  );
  if (!rows[0]?.exists) return null;
  const applied = await db.query<AppliedRow>(`select version, name, ${rows[0].has_checksum ? 'checksum' : 'null::text as checksum'} from firebreak_migrations order by version`);
  return new Map(applied.rows.map((r) => [r.version, r]));
}

/** Refuse a database whose applied migrations are not the files this code has. */
function checkApplied(applied: Map<number, AppliedRow>, migrations: readonly Migration[], dir: string): void {
  const byVersion = new Map(migrations.map((m) => [m.version, m]));
  for (const row of applied.values()) {
    const file = byVersion.get(row.version);
    if (!file) {
      throw new MigrationMismatchError(`migration ${row.name} was applied to this database but is not in ${dir}: this code is older than the database, or the file was deleted`, row.name);
    }
    if (row.checksum !== null && row.checksum !== file.checksum) {
      throw new MigrationMismatchError(
        `migration ${file.name} changed after it was applied (checksum ${row.checksum.slice(0, 12)} in the database, ${file.checksum.slice(0, 12)} on disk): applied migrations are never edited; put the change in a new numbered file`,
        file.name,
      );
    }
  }
}

/**
 * Apply pending numbered migrations in one transaction under an advisory lock,
 * so replicas starting together end with one schema and a failure leaves none
 * half-applied. Returns the names applied by this call.
 *
 * Every applied file's checksum is recorded; a file that changed after it was
 * applied, or an applied file that is missing, stops start-up with a
 * MigrationMismatchError naming the file. An up-to-date schema costs reads and
 * no DDL, so a role that does not own the tables (the production set-up in
 * docs/deploy.md) starts fine; a role that cannot apply a pending migration
 * gets a MigrationError saying who should.
 */
export async function migrate(pool: pg.Pool, options: MigrateOptions = {}): Promise<string[]> {
  const dir = options.dir ?? migrationsDir();
  const migrations = await readMigrations(dir);
  const gaps = unexpectedGaps(migrations);
  if (gaps.length > 0) options.onWarning?.(`migration numbers ${gaps.map((g) => String(g).padStart(4, '0')).join(', ')} are missing from ${dir}`);
  const known = await appliedMigrations(pool);
  if (known) checkApplied(known, migrations, dir);
  const pending = migrations.filter((m) => !known?.has(m.version));
  // Checksums came after 0001-0007 were released: rows without one get theirs from the owning role's next run.
  const unrecorded = known ? [...known.values()].some((r) => r.checksum === null) : false;
  if (pending.length === 0 && !unrecorded) return [];
  try {
    return await withTransaction(pool, async (client) => {
      await client.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK_ID]);
      await client.query(`create table if not exists firebreak_migrations (
        version integer primary key,
        name text not null,
        applied_at timestamptz not null default now()
      )`);
      await client.query('alter table firebreak_migrations add column if not exists checksum text');
      const applied = (await appliedMigrations(client))!;
      checkApplied(applied, migrations, dir);
      const byVersion = new Map(migrations.map((m) => [m.version, m]));
      for (const row of applied.values()) {
        if (row.checksum === null) await client.query('update firebreak_migrations set checksum = $2 where version = $1', [row.version, byVersion.get(row.version)!.checksum]);
      }
      const done: string[] = [];
      for (const migration of migrations) {
        if (applied.has(migration.version)) continue;
        await client.query(migration.sql);
        await client.query('insert into firebreak_migrations (version, name, checksum) values ($1, $2, $3)', [migration.version, migration.name, migration.checksum]);
        done.push(migration.name);
      }
      return done;
    });
  } catch (err) {
    if (pgErrorCode(err) !== PgCode.insufficientPrivilege) throw err;
    // Only checksums left to record, and this role may not: the owner's next `firebreak migrate` records them.
    if (pending.length === 0) return [];
    throw new MigrationError(
      `${pending.length} database migration(s) pending (${pending.map((m) => m.name).join(', ')}) and this database role may not apply them (${(err as Error).message}): run \`firebreak migrate\` with the owning role's DATABASE_URL, then start again`,
      pending.map((m) => m.name),
      { cause: err },
    );
  }
}

/** Tables the app may read and append to, never change: the audit trail. */
export const APPEND_ONLY_TABLES = ['timeline_events', 'audit_checkpoints', 'audit_checkpoint_heads', 'alert_outcomes'] as const;
/** Tables the app may only read. */
/** Tables the app may only read (firebreak_clock: only tests move the database's clock). */
export const READ_ONLY_TABLES = ['firebreak_migrations', 'timeline_legacy_heads', 'timeline_legacy_seal', 'firebreak_clock'] as const;

/**
 * Grant an application role what the server needs on the current schema and
 * nothing more: read and write the working tables, only read and insert the
 * audit tables (no UPDATE, DELETE, TRUNCATE or TRIGGER), only read the
 * migration bookkeeping. Not being the owner, the role cannot disable the
 * append-only triggers either. Run by the owning role after every migrate
 * (`firebreak migrate --grant-to <role>`); default privileges give tables that
 * later migrations create no more than SELECT and INSERT until then.
 */
export async function grantAppRole(pool: pg.Pool, role: string): Promise<void> {
  await withTransaction(pool, async (client) => {
    const { rows } = await client.query<{ ident: string; schema: string; is_owner: boolean }>(
      `select quote_ident($1::text) as ident, quote_ident(current_schema()) as schema,
              pg_has_role($1::text, (select relowner from pg_class where oid = 'timeline_events'::regclass), 'MEMBER') as is_owner`,
      [role],
    ).catch((err: unknown) => {
      throw new MigrationError(`cannot grant to role ${JSON.stringify(role)}: ${(err as Error).message}`, [], { cause: err });
    });
    const r = rows[0]!;
    if (r.is_owner) throw new MigrationError(`role ${role} owns the Firebreak tables (or is a member of their owner): the application role must be a different, non-owning role`, []);
    const appendOnly = APPEND_ONLY_TABLES.join(', ');
    const readOnly = READ_ONLY_TABLES.join(', ');
    await client.query(`
      grant usage on schema ${r.schema} to ${r.ident};
      grant select, insert, update, delete on all tables in schema ${r.schema} to ${r.ident};
      grant usage, select on all sequences in schema ${r.schema} to ${r.ident};
      revoke update, delete, truncate, references, trigger on ${appendOnly} from ${r.ident};
      revoke insert, update, delete, truncate, references, trigger on ${readOnly} from ${r.ident};
      alter default privileges in schema ${r.schema} grant select, insert on tables to ${r.ident};
      alter default privileges in schema ${r.schema} grant usage, select on sequences to ${r.ident};`);
  });
}
