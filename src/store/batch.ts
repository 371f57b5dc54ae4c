/**
 * Several statements, one round trip. A batch is sent as one simple-protocol
 * query: Postgres runs its statements in one implicit transaction (all or
 * nothing), each with a fresh snapshot, and answers once. Statements are
 * prepared once per connection (SQL PREPARE) and called with EXECUTE, so the
 * hot path is neither re-parsed nor re-planned; parameters travel as literals
 * escaped by the driver.
 *
 * The same Statement also runs on its own through the extended protocol
 * (`runStatement`), as a named statement, for callers that need its rows
 * before deciding what to do next.
 */
import type pg from 'pg';
import { withClient } from './transaction.js';

/** A named SQL statement. Every `$n` carries a cast (`$1::uuid`) so PREPARE can infer its type. */
export interface Statement {
  name: string;
  text: string;
}

export function statement(name: string, text: string): Statement {
  if (!/^[a-z][a-z0-9_]*$/.test(name)) throw new Error(`statement name ${name}: use [a-z0-9_]`);
  return { name, text };
}

export interface Call {
  statement: Statement;
  params: readonly unknown[];
}

export const call = (s: Statement, ...params: unknown[]): Call => ({ statement: s, params });

/** Names of SQL-level prepared statements live apart from the driver's protocol-level ones. */
const sqlName = (s: Statement) => `b_${s.name}`;

const prepared = new WeakMap<pg.ClientBase, Set<string>>();

/** A parameter as an SQL literal (untyped: EXECUTE coerces it to the prepared parameter's type). */
export function literal(value: unknown, escape: (s: string) => string): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return escape(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`cannot send ${value} to Postgres`);
    return escape(String(value));
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value instanceof Date) return escape(value.toISOString());
  return escape(JSON.stringify(value));
}

/** Run one statement on its own (extended protocol, named: parsed once per connection). */
export function runStatement<R extends pg.QueryResultRow = pg.QueryResultRow>(db: pg.Pool | pg.ClientBase, s: Statement, params: readonly unknown[]): Promise<pg.QueryResult<R>> {
  return db.query<R>({ name: s.name, text: s.text, values: params as unknown[] });
}

/**
 * Send `sql` (plain statements, e.g. a guard) followed by the calls as ONE
 * query. Returns one result per statement: `sql` first, then the calls.
 * Prepares what this connection has not seen yet, in a round trip of its own
 * (once per connection and statement).
 */
export async function sendBatch(client: pg.ClientBase, head: readonly string[], calls: readonly Call[], tail: readonly string[] = []): Promise<pg.QueryResult[]> {
  let known = prepared.get(client);
  if (!known) prepared.set(client, (known = new Set()));
  const missing = [...new Set(calls.map((c) => c.statement))].filter((s) => !known!.has(s.name));
  if (missing.length > 0) {
    await client.query(missing.map((s) => `prepare ${sqlName(s)} as ${s.text}`).join(';\n'));
    for (const s of missing) known.add(s.name);
  }
  const escape = (s: string) => client.escapeLiteral(s);
  const text = [
    ...head,
    ...calls.map((c) => `execute ${sqlName(c.statement)}${c.params.length > 0 ? `(${c.params.map((p) => literal(p, escape)).join(', ')})` : ''}`),
    ...tail,
  ].join(';\n');
  const result = (await client.query(text)) as unknown as pg.QueryResult | pg.QueryResult[];
  return Array.isArray(result) ? result : [result];
}

/** Check out a client for batches (the one checkout helper: a broken connection is not reused). */
export const withBatchClient = withClient;
