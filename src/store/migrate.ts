import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { MigrationError } from '../errors.js';
import { PgCode, pgErrorCode } from './errors.js';
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

/** Versions already applied, or null when the database has never been migrated. Reads only: no DDL. */
async function appliedVersions(pool: pg.Pool): Promise<Set<number> | null> {
  const { rows } = await pool.query<{ exists: boolean }>(`select to_regclass('firebreak_migrations') is not null as exists`);
  if (!rows[0]?.exists) return null;
  const applied = await pool.query<{ version: number }>('select version from firebreak_migrations');
  return new Set(applied.rows.map((r) => r.version));
}

/**
 * Apply pending numbered migrations in one transaction under an advisory lock,
 * so replicas starting together end with one schema and a failure leaves none
 * half-applied. Returns the names applied by this call. An up-to-date schema
 * costs two reads and no DDL, so a role that does not own the tables (the
 * production set-up in docs/deploy.md) starts fine; a role that cannot apply
 * a pending migration gets a MigrationError saying who should.
 */
export async function migrate(pool: pg.Pool): Promise<string[]> {
  const migrations = await readMigrations();
  const known = await appliedVersions(pool);
  const pending = migrations.filter((m) => !known?.has(m.version));
  if (pending.length === 0) return [];
  try {
    return await withTransaction(pool, async (client) => {
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
  } catch (err) {
    if (pgErrorCode(err) !== PgCode.insufficientPrivilege) throw err;
    throw new MigrationError(
      `${pending.length} database migration(s) pending (${pending.map((m) => m.name).join(', ')}) and this database role may not apply them (${(err as Error).message}): run \`firebreak migrate\` with the owning role's DATABASE_URL, then start again`,
      pending.map((m) => m.name),
      { cause: err },
    );
  }
}

/** Tables the app may read and append to, never change: the audit trail. */
export const APPEND_ONLY_TABLES = ['timeline_events', 'audit_checkpoints', 'audit_checkpoint_heads'] as const;
/** Tables the app may only read. */
export const READ_ONLY_TABLES = ['firebreak_migrations', 'timeline_legacy_heads', 'timeline_legacy_seal'] as const;

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
