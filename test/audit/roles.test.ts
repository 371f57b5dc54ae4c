/**
 * The production set-up of docs/deploy.md, for real: an owner role migrates
 * (`firebreak migrate --grant-to <app>`), the server runs as an application
 * role that does not own `timeline_events`, runs still work end to end, and
 * that role can neither switch the append-only triggers off nor change or
 * delete audit rows.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testAuditKey } from '../helpers/audit.js';
import { adminUrl } from '../helpers/db.js';
import { genericAlert, playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, runCli, startServer, type ServerProcess } from '../helpers/server.js';

const suffix = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
const owner = { name: `fb_owner_${suffix}`, password: randomBytes(12).toString('hex') };
const app = { name: `fb_app_${suffix}`, password: randomBytes(12).toString('hex') };
const database = `fb_test_roles_${suffix}`;
const audit = testAuditKey();
let ownerUrl: string;
let appUrl: string;
let playbooks: string;

function urlAs(role: { name: string; password: string }): string {
  const url = new URL(adminUrl());
  url.username = role.name;
  url.password = role.password;
  url.pathname = `/${database}`;
  return url.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function as<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  await admin(async (c) => {
    await c.query(`create role ${owner.name} login password '${owner.password}'`);
    await c.query(`create role ${app.name} login password '${app.password}'`);
    await c.query(`create database ${database} owner ${owner.name}`);
  });
  // Before PostgreSQL 15 every role may create in `public`; take that away, as a careful operator would (docs/deploy.md).
  await as(urlAs({ name: owner.name, password: owner.password }), (c) => c.query('revoke create on schema public from public'));
  ownerUrl = urlAs(owner);
  appUrl = urlAs(app);
  playbooks = await playbooksDir({
    'disk.yaml': `
name: disk
triggers:
  - source: generic
    matchers: ['alertname="DiskFull"']
steps:
  - { id: look, action: note, with: { text: "disk on \${{ alert.labels.host }}" } }
  - { id: clean, action: note, with: { text: "cleaned" } }
`,
    'by-hand.yaml': `
name: by-hand
steps:
  - { id: only, action: note, with: { text: "started by hand" } }
`,
  });
});

afterAll(async () => {
  await admin(async (c) => {
    await c.query(`drop database if exists ${database} with (force)`);
    await c.query(`drop role if exists ${app.name}`);
    await c.query(`drop role if exists ${owner.name}`);
  });
});

describe('an application role that does not own the audit trail', () => {
  it('cannot migrate: `firebreak migrate` as the app role says who should', async () => {
    const res = await runCli(['migrate'], { DATABASE_URL: appUrl, FIREBREAK_AUDIT_KEY: audit.hex });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/migration\(s\) pending .* this database role may not apply them .*run `firebreak migrate` with the owning role's DATABASE_URL/);
    expect(res.stderr).not.toContain(app.password);
  });

  it('firebreak migrate --grant-to runs as the owner, and refuses to make the owner the app role', async () => {
    const res = await runCli(['migrate', '--grant-to', app.name], { DATABASE_URL: ownerUrl });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^applied: 0001_timeline\.sql, /);
    expect(res.stdout).toContain(`granted ${app.name}`);
    const self = await runCli(['migrate', '--grant-to', owner.name], { DATABASE_URL: ownerUrl });
    expect(self.code).toBe(1);
    expect(self.stderr).toMatch(/owns the Firebreak tables/);
  });

  it('the server runs as the app role: alerts and manual runs go end to end, checkpoints are written, verify passes', async () => {
    let server: ServerProcess | undefined;
    try {
      server = await startServer({ DATABASE_URL: appUrl, FIREBREAK_PLAYBOOKS: playbooks, FIREBREAK_AUDIT_KEY: audit.hex, FIREBREAK_AUDIT_CHECKPOINT_MS: '1000' });
      const fired = await httpJson('POST', `${server.url}/hooks/generic`, genericAlert({ alertname: 'DiskFull', host: 'db-1' }));
      expect(fired.status, JSON.stringify(fired.body)).toBe(202);
      const manual = await httpJson('POST', `${server.url}/api/runs`, { playbook: 'by-hand' });
      expect(manual.status, JSON.stringify(manual.body)).toBe(201);
      const ids = [fired.body.runs[0], manual.body.id] as string[];
      for (const id of ids) await eventually(async () => (await httpJson('GET', `${server!.url}/api/runs/${id}`)).body.status === 'succeeded', 30_000);
      await eventually(async () => {
        const items = (await httpJson('GET', `${server!.url}/api/audit/checkpoints`)).body.items as Array<{ heads: Array<{ chain: string }> }>;
        const chains = new Set(items.flatMap((c) => c.heads.map((h) => h.chain)));
        return ids.every((id) => chains.has(id));
      }, 30_000);
    } finally {
      await server?.stop();
    }
    expect(server.logs()).not.toMatch(/permission denied/);
    const res = await runCli(['audit', 'verify'], { DATABASE_URL: appUrl, FIREBREAK_AUDIT_KEY: audit.hex });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toMatch(/audit ok: 2 chain\(s\)/);
  });

  it('cannot switch the append-only triggers off, nor change, delete or truncate audit rows', async () => {
    await as(appUrl, async (c) => {
      await expect(c.query('alter table timeline_events disable trigger user')).rejects.toThrow(/must be owner/);
      await expect(c.query('drop table timeline_events')).rejects.toThrow(/must be owner/);
      await expect(c.query(`update timeline_events set actor = 'someone'`)).rejects.toThrow(/permission denied/);
      await expect(c.query('delete from timeline_events')).rejects.toThrow(/permission denied/);
      await expect(c.query('truncate timeline_events')).rejects.toThrow(/permission denied/);
      await expect(c.query('delete from audit_checkpoints')).rejects.toThrow(/permission denied/);
      await expect(c.query('delete from audit_checkpoint_heads')).rejects.toThrow(/permission denied/);
      // What became of each alert is a record too: the app adds outcomes, never rewrites them.
      await expect(c.query(`update alert_outcomes set outcome = 'started'`)).rejects.toThrow(/permission denied/);
      await expect(c.query('delete from alert_outcomes')).rejects.toThrow(/permission denied/);
      await expect(c.query(`insert into timeline_legacy_heads values ('x', 1, $1)`, ['0'.repeat(64)])).rejects.toThrow(/permission denied/);
      await expect(c.query('delete from firebreak_migrations')).rejects.toThrow(/permission denied/);
      await expect(c.query('create table sneaky (id int)')).rejects.toThrow(/permission denied/);
      // What it must do, it can: read everything, append to the timeline.
      const { rows } = await c.query('select count(*)::int as n from timeline_events');
      expect(rows[0].n).toBeGreaterThan(0);
    });
  });

  it('a pending migration stops the app role at start-up with one clear line', async () => {
    // As if a new release came with a migration nobody ran yet.
    await as(ownerUrl, (c) => c.query('delete from firebreak_migrations where version = (select max(version) from firebreak_migrations)'));
    const { code, stderr } = await runCli(['serve'], { DATABASE_URL: appUrl, FIREBREAK_PLAYBOOKS: playbooks, FIREBREAK_AUDIT_KEY: audit.hex, PORT: '0' });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^1 database migration\(s\) pending \(\d{4}_[a-z0-9_]+\.sql\) and this database role may not apply them/);
  });
});
