/**
 * Postgres restarting under load ends every backend, including ones a
 * transaction has checked out and is not querying at that instant (FATAL
 * 57P01 between two statements). That must fail the transaction, not the
 * process: the chaos run found all three servers dying on the first restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, withTransaction, type Pool } from '../../src/store/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
let pool: Pool;

beforeAll(async () => {
  db = await createTestDatabase();
  pool = createPool(db.url, undefined, 2);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

describe('a connection lost inside a transaction', () => {
  it('rejects the transaction, keeps the process, and the pool serves again', async () => {
    const work = withTransaction(pool, async (client) => {
      const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
      // What a Postgres shutdown does to every backend, while this transaction does JS work between queries.
      await db.pool.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
      await new Promise((r) => setTimeout(r, 300));
      await client.query('select 1');
    });
    await expect(work).rejects.toThrow();
    const { rows } = await pool.query<{ ok: number }>('select 1 as ok');
    expect(rows[0]!.ok).toBe(1);
  });
});
