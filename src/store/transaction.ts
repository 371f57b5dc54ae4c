import type pg from 'pg';
import { isDatabaseUnavailable } from './errors.js';

/**
 * Check out a client for `fn` and give it back; a client whose connection died
 * while we held it is destroyed, not put back in the pool.
 */
export async function withClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  // A checked-out client has no pool listener for 'error': a connection that dies while we hold it
  // (Postgres restart: FATAL 57P01 between two queries, ECONNRESET) would be an unhandled 'error'
  // event and kill the process. Note it instead; the pending query, if any, rejects on its own.
  const onError = () => {
    broken = true;
  };
  client.on('error', onError);
  try {
    return await fn(client);
  } catch (err) {
    broken = broken || isDatabaseUnavailable(err);
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

/**
 * Run fn inside a transaction on one client; rolls back on any error.
 * `begin` may replace the plain BEGIN with a simple-protocol batch that opens
 * the transaction and takes its locks in one round trip (values escaped by the
 * caller); fn receives that batch's results.
 */
export async function withTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient, opened: pg.QueryResult[]) => Promise<T>,
  options: { begin?: string } = {},
): Promise<T> {
  return withClient(pool, async (client) => {
    try {
      const opened = (await client.query(options.begin ?? 'begin')) as unknown as pg.QueryResult | pg.QueryResult[];
      const result = await fn(client, Array.isArray(opened) ? opened : [opened]);
      await client.query('commit');
      return result;
    } catch (err) {
      if (!isDatabaseUnavailable(err)) await client.query('rollback').catch(() => {});
      throw err;
    }
  });
}
