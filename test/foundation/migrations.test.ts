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

describe('migration integrity', () => {
  it('records a checksum per file and refuses a file changed after it was applied, naming it', async () => {
    const { cp, mkdtemp, readFile, rm, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { migrationsDir, readMigrations } = await import('../../src/store/index.js');
    const dir = await mkdtemp(join(tmpdir(), 'fb-migrations-'));
    const fresh = await createTestDatabase({ migrate: false });
    try {
      await cp(migrationsDir(), dir, { recursive: true });
      await migrate(fresh.pool, { dir });
      const files = await readMigrations(dir);
      const { rows } = await fresh.pool.query('select name, checksum from firebreak_migrations order by version');
      expect(rows).toEqual(files.map((f) => ({ name: f.name, checksum: f.checksum })));

      // A CRLF checkout is the same file.
      const second = files[1]!;
      await writeFile(join(dir, second.name), second.sql.replace(/\n/g, '\r\n'));
      expect(await migrate(fresh.pool, { dir })).toEqual([]);

      // An edit is not.
      await writeFile(join(dir, second.name), `${second.sql}\n-- an edit after release\n`);
      await expect(migrate(fresh.pool, { dir })).rejects.toThrow(new RegExp(`migration ${second.name} changed after it was applied`));
      await writeFile(join(dir, second.name), second.sql);

      // Databases migrated before checksums existed get theirs recorded on the next start.
      await fresh.pool.query('update firebreak_migrations set checksum = null');
      expect(await migrate(fresh.pool, { dir })).toEqual([]);
      expect((await fresh.pool.query('select count(*)::int as n from firebreak_migrations where checksum is null')).rows[0].n).toBe(0);

      // An applied migration missing from the code: the code is older than the database.
      const last = files.at(-1)!;
      await rm(join(dir, last.name));
      await expect(migrate(fresh.pool, { dir })).rejects.toThrow(new RegExp(`migration ${last.name} was applied to this database but is not in`));
      expect((await readFile(join(migrationsDir(), last.name), 'utf8')).length).toBeGreaterThan(0);
    } finally {
      await fresh.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('knows the numbering gaps that shipped (0004, 0006, 0013, 0015-0024) and reports any other', async () => {
    const { unexpectedGaps, KNOWN_MIGRATION_GAPS, readMigrations } = await import('../../src/store/index.js');
    expect(KNOWN_MIGRATION_GAPS).toEqual([4, 6, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
    // The migrations this code ships have no other hole: a start-up logs no warning.
    expect(unexpectedGaps(await readMigrations())).toEqual([]);
    const numbered = (...versions: number[]) => versions.map((version) => ({ version }));
    expect(unexpectedGaps(numbered(1, 2, 3, 5, 7, 8, 9))).toEqual([]);
    expect(unexpectedGaps(numbered(1, 2, 5, 7, 8, 9))).toEqual([3]);
  });

  it('schema/schema.sql is what the migrations build (regenerate with npm run schema:dump)', async () => {
    const { readFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { dumpSchema, packageRoot } = await import('../../src/store/index.js');
    const fresh = await createTestDatabase();
    try {
      const committed = await readFile(join(packageRoot(), 'schema', 'schema.sql'), 'utf8');
      expect(await dumpSchema(fresh.pool), 'schema/schema.sql is stale: run `npm run schema:dump` and commit it').toBe(committed);
    } finally {
      await fresh.drop();
    }
  });
});
