import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, migrate } from '../../src/store/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ migrate: false });
});
afterAll(async () => db?.drop());

describe('migrations', () => {
  it('two concurrent migrators end with one schema, and a second run applies nothing', async () => {
    const a = createPool(db.url);
    const b = createPool(db.url);
    try {
      const [ra, rb] = await Promise.all([migrate(a), migrate(b)]);
      // Exactly one of them applied everything; the other found it done.
      expect([ra.length, rb.length].sort()).toEqual([0, ra.length || rb.length]);
      expect(ra.length + rb.length).toBeGreaterThanOrEqual(3);
      expect(await migrate(a)).toEqual([]);
      const { rows } = await a.query('select count(*)::int as n, count(distinct version)::int as d from firebreak_migrations');
      expect(rows[0].n).toBe(rows[0].d);
      const tables = await a.query("select table_name from information_schema.tables where table_schema = 'public' order by 1");
      expect(tables.rows.map((r) => r.table_name)).toEqual(expect.arrayContaining(['timeline_events', 'alert_episodes', 'alert_notifications', 'runs', 'run_steps', 'approvals']));
    } finally {
      await a.end();
      await b.end();
    }
  });
});
