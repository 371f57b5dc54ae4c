/**
 * The audit key: its format (validated at start-up, never echoed), required
 * off loopback, and in local mode one key file per data dir, created
 * atomically by whichever process needs it first and shared by the server
 * and `firebreak audit verify`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { ValidationError } from '../../src/errors.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { playbooksDir } from '../helpers/playbooks.js';
import { eventually, httpJson, ROOT, runCli, startServer } from '../helpers/server.js';

let db: TestDatabase;
let work: string;

beforeAll(async () => {
  db = await createTestDatabase();
  work = await mkdtemp(join(tmpdir(), 'fb-audit-key-'));
});
afterAll(async () => db?.drop());

function keyProblem(value: string): string | undefined {
  try {
    loadConfig({ FIREBREAK_AUDIT_KEY: value });
    return undefined;
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return err.details.map((d) => `${d.path}: ${d.message}`).join('\n');
  }
}

describe('FIREBREAK_AUDIT_KEY', () => {
  it('takes 32 or more random bytes as hex or base64, and refuses anything weaker without repeating it', () => {
    const bytes = randomBytes(32);
    expect(keyProblem(bytes.toString('hex'))).toBeUndefined();
    expect(keyProblem(bytes.toString('base64'))).toBeUndefined();
    expect(keyProblem(bytes.toString('base64url'))).toBeUndefined();
    expect(keyProblem(randomBytes(64).toString('hex'))).toBeUndefined();
    const short = randomBytes(16).toString('hex');
    const problem = keyProblem(short)!;
    expect(problem).toMatch(/^FIREBREAK_AUDIT_KEY: must hold at least 32 bytes/);
    expect(problem).not.toContain(short);
    const phrase = 'correct horse battery staple, twice over!';
    expect(keyProblem(phrase)).toMatch(/^FIREBREAK_AUDIT_KEY: must be hex or base64/);
    expect(keyProblem(phrase)).not.toContain(phrase);
    // The decoded key never shows in the config's JSON.
    const config = loadConfig({ FIREBREAK_AUDIT_KEY: bytes.toString('hex') });
    expect(JSON.stringify(config)).not.toContain(bytes.toString('hex'));
  });

  it('serve refuses to start off loopback without it, with one line naming it', async () => {
    const { code, stderr } = await runCli(['serve'], {
      HOST: '0.0.0.0',
      PORT: '0',
      DATABASE_URL: db.url,
      FIREBREAK_WEBHOOK_TOKEN: 'w'.repeat(32),
      FIREBREAK_API_TOKEN: 'a'.repeat(32),
      FIREBREAK_DATA_DIR: join(work, 'never-created'),
    });
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n').filter((l) => l.trim().startsWith('FIREBREAK_'));
    expect(lines).toHaveLength(1);
    expect(lines[0]!.trim()).toMatch(/^FIREBREAK_AUDIT_KEY: required when HOST \(0\.0\.0\.0\) is not loopback/);
    await expect(stat(join(work, 'never-created'))).rejects.toThrow(/ENOENT/);
  });

  it('FIREBREAK_INSECURE=1 waives it off loopback, like the tokens (the data dir key file is used)', () => {
    const config = loadConfig({ HOST: '0.0.0.0', FIREBREAK_INSECURE: '1' });
    expect(config.auditKey).toBeUndefined();
    expect(() => loadConfig({ HOST: '0.0.0.0', FIREBREAK_WEBHOOK_TOKEN: 'w'.repeat(32), FIREBREAK_API_TOKEN: 'a'.repeat(32) })).toThrow(ValidationError);
  });

  it('serve refuses a malformed key without echoing it', async () => {
    const bad = 'not-a-key-' + randomBytes(4).toString('hex');
    const { code, stderr } = await runCli(['serve'], { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: bad, PORT: '0' });
    expect(code).toBe(1);
    expect(stderr).toMatch(/FIREBREAK_AUDIT_KEY: must/);
    expect(stderr).not.toContain(bad);
  });
});

describe('local mode: the key file in the data dir', () => {
  it('eight processes starting at once end with one key file (0600) and no leftovers', async () => {
    const dataDir = join(work, 'race');
    const start = Date.now() + 1_500;
    // Each child waits for the same instant, then loads (creating if needed) the key, as a starting server does.
    const script = `
      const { loadAuditKey } = await import(${JSON.stringify(join(ROOT, 'dist/src/audit/index.js'))});
      while (Date.now() < ${start}) {}
      const r = await loadAuditKey({ material: undefined, dataDir: ${JSON.stringify(dataDir)}, create: true });
      process.stdout.write(JSON.stringify({ id: r.key.id, created: Boolean(r.created) }));`;
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        new Promise<{ id: string; created: boolean }>((resolve, reject) => {
          const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          let err = '';
          child.stdout.on('data', (d) => (out += d));
          child.stderr.on('data', (d) => (err += d));
          child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(err))));
        }),
      ),
    );
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(await readdir(dataDir)).toEqual(['audit.key']);
    expect((await stat(join(dataDir, 'audit.key'))).mode & 0o777).toBe(0o600);
    expect((await readFile(join(dataDir, 'audit.key'), 'utf8')).trim()).toMatch(/^[0-9a-f]{64}$/);
  });

  it('the server creates it, audit verify uses it, and verify with another data dir refuses rather than invent a key', async () => {
    const dataDir = join(work, 'local');
    const dir = await playbooksDir({ 'one.yaml': 'name: one\nsteps:\n  - { id: only, action: note, with: { text: "hi" } }\n' });
    const server = await startServer({ DATABASE_URL: db.url, FIREBREAK_DATA_DIR: dataDir, FIREBREAK_PLAYBOOKS: dir });
    let runId: string;
    try {
      runId = (await httpJson('POST', `${server.url}/api/runs`, { playbook: 'one' })).body.id;
      await eventually(async () => (await httpJson('GET', `${server.url}/api/runs/${runId}`)).body.status === 'succeeded');
    } finally {
      await server.stop();
    }
    const key = (await readFile(join(dataDir, 'audit.key'), 'utf8')).trim();
    expect(server.logs()).not.toContain(key);
    const ok = await runCli(['audit', 'verify', runId], { DATABASE_URL: db.url, FIREBREAK_DATA_DIR: dataDir });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    const elsewhere = join(work, 'elsewhere');
    const none = await runCli(['audit', 'verify', runId], { DATABASE_URL: db.url, FIREBREAK_DATA_DIR: elsewhere });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no audit key: FIREBREAK_AUDIT_KEY is unset and .*audit\.key does not exist/);
    await expect(stat(elsewhere)).rejects.toThrow(/ENOENT/);
    // The same key given as FIREBREAK_AUDIT_KEY verifies too; another key does not.
    expect((await runCli(['audit', 'verify', runId], { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: key })).code).toBe(0);
    const wrong = await runCli(['audit', 'verify', runId], { DATABASE_URL: db.url, FIREBREAK_AUDIT_KEY: randomBytes(32).toString('hex') });
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(/signed by key [0-9a-f]{16}, this is key [0-9a-f]{16}|under audit key/);
  });

  it('a damaged key file stops start-up with a message naming the file', async () => {
    const dataDir = join(work, 'damaged');
    await runCli(['audit', 'verify'], { DATABASE_URL: db.url, FIREBREAK_DATA_DIR: dataDir }); // creates nothing
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dataDir, { recursive: true });
    await writeFile(join(dataDir, 'audit.key'), 'abc\n', { mode: 0o600 });
    const { code, stderr } = await runCli(['serve'], { DATABASE_URL: db.url, FIREBREAK_DATA_DIR: dataDir, PORT: '0' });
    expect(code).toBe(1);
    expect(stderr.trim()).toMatch(/the audit key file .*damaged\/audit\.key is not a valid key: it must/);
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
