import pg from 'pg';
import type { Logger } from 'pino';
import { startEmbeddedPostgres, type EmbeddedPostgresHandle } from './embedded.js';
import { migrate } from './migrate.js';

export { EmbeddedPostgresError, isDatabaseUnavailable, pgErrorCode, PgCode } from './errors.js';
export {
  migrate,
  migrationsDir,
  grantAppRole,
  APPEND_ONLY_TABLES,
  READ_ONLY_TABLES,
  readMigrations,
  migrationChecksum,
  unexpectedGaps,
  MigrationMismatchError,
  KNOWN_MIGRATION_GAPS,
  type Migration,
  type MigrateOptions,
} from './migrate.js';
export { dumpSchema } from './schema-dump.js';
export { withTransaction } from './transaction.js';
export { statement, call, runStatement, sendBatch, withBatchClient, literal, type Statement, type Call } from './batch.js';
export { startEmbeddedPostgres, runningEmbeddedUrl, type EmbeddedPostgresHandle } from './embedded.js';
export { packageRoot } from './paths.js';
export { DatabaseClock } from './clock.js';

// Postgres bigint/int8 as JS numbers: our counters never approach 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

/**
 * A named statement: pg prepares it once per connection, so Postgres does not
 * re-plan it on every call of a hot path. Names must be unique per text.
 */
export function named(name: string, text: string): { name: string; text: string } {
  return { name, text };
}

/** A SQL string literal for simple-protocol batches (the driver's own escaping). */
export function escapeLiteral(value: string): string {
  return pg.escapeLiteral(value);
}

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
export type Queryable = pg.Pool | pg.PoolClient;

export interface Store {
  pool: pg.Pool;
  url: string;
  embedded: boolean;
  close(): Promise<void>;
}

export function createPool(url: string, logger?: Logger, max = 10): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    // Fail fast when the database is gone so webhooks answer 503 quickly.
    connectionTimeoutMillis: 3_000,
    idleTimeoutMillis: 30_000,
    application_name: 'firebreak',
  });
  // An idle client losing its connection (Postgres restart) must not crash the process.
  pool.on('error', (err) => logger?.warn({ err: err.message }, 'postgres idle client error'));
  return pool;
}

/**
 * Open the store: DATABASE_URL when given, otherwise embedded Postgres in dataDir.
 * Applies migrations before returning.
 */
export async function openStore(options: { databaseUrl?: string; dataDir: string; logger: Logger; poolSize?: number }): Promise<Store> {
  let embedded: EmbeddedPostgresHandle | undefined;
  let url = options.databaseUrl;
  if (!url) {
    options.logger.info({ dataDir: options.dataDir }, 'DATABASE_URL unset: starting embedded PostgreSQL');
    embedded = await startEmbeddedPostgres({
      dataDir: options.dataDir,
      log: (line) => options.logger.debug({ postgres: line }),
      progress: (message) => options.logger.info(message),
    });
    url = embedded.url;
  }
  const pool = createPool(url, options.logger, options.poolSize);
  try {
    const applied = await migrate(pool, { onWarning: (message) => options.logger.warn(message) });
    if (applied.length > 0) options.logger.info({ applied }, 'database migrations applied');
  } catch (err) {
    await pool.end().catch(() => {});
    await embedded?.stop().catch(() => {});
    throw err;
  }
  return {
    pool,
    url,
    embedded: embedded !== undefined,
    async close() {
      await pool.end().catch(() => {});
      await embedded?.stop();
    },
  };
}

