/**
 * Each test file gets its own database on the suite's real Postgres server
 * (DATABASE_URL, or the embedded cluster from test/setup/global.ts), dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createPool, migrate, type Pool } from '../../src/store/index.js';

export interface TestDatabase {
  url: string;
  name: string;
  pool: Pool;
  drop(): Promise<void>;
}

export function adminUrl(): string {
  return inject('adminDatabaseUrl');
}

export function urlFor(database: string): string {
  const url = new URL(adminUrl());
  url.pathname = `/${database}`;
  return url.toString();
}

export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `fb_test_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = urlFor(name);
  const pool = createPool(url, undefined, 10);
  if (options.migrate !== false) await migrate(pool);
  return {
    url,
    name,
    pool,
    async drop() {
      await pool.end().catch(() => {});
      const c = new pg.Client({ connectionString: adminUrl() });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

/**
 * Move the database's clock forward (fb_now(), migration 0008): every lease,
 * timer and deadline the engine computes in SQL sees the new time at once.
 * Tests use it instead of sleeping. Returns the new database time.
 */
export async function advanceDatabaseClock(pool: Pool, by: string): Promise<Date> {
  const { rows } = await pool.query<{ now: Date }>('select firebreak_advance_clock($1::interval) as now', [by]);
  return rows[0]!.now;
}
