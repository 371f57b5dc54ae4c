import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { ValidationError } from '../../src/errors.js';
import { runCli } from '../helpers/server.js';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ValidationError) return err.details.map((d) => `${d.path}: ${d.message}`);
    throw err;
  }
  return [];
}

describe('configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.host).toBe('127.0.0.1');
    expect(c.dataDir).toBe('.firebreak');
    expect(c.playbooksDir).toBe('playbooks');
    expect(c.policiesDir).toBe('policies');
    expect(c.publicUrl).toBe('http://127.0.0.1:8080');
    expect(c.httpAllow).toEqual([]);
    expect(c.databaseUrl).toBeUndefined();
  });

  it('names every bad variable, one problem each', () => {
    const found = problems({ PORT: 'eighty', LOG_LEVEL: 'loud', SLACK_API_URL: 'not a url', FIREBREAK_HTTP_ALLOW: 'ok.example, bad host!' });
    expect(found.map((p) => p.split(':')[0]).sort()).toEqual(['FIREBREAK_HTTP_ALLOW', 'LOG_LEVEL', 'PORT', 'SLACK_API_URL']);
  });

  it('refuses a non-loopback HOST without both tokens (unless FIREBREAK_INSECURE=1) and without the audit key (unless FIREBREAK_INSECURE=1, which falls back to the data dir key file)', () => {
    const key = 'ab'.repeat(32);
    expect(problems({ HOST: '0.0.0.0' }).map((p) => p.split(':')[0]).sort()).toEqual(['FIREBREAK_API_TOKEN', 'FIREBREAK_AUDIT_KEY', 'FIREBREAK_WEBHOOK_TOKEN']);
    expect(problems({ HOST: '0.0.0.0', FIREBREAK_WEBHOOK_TOKEN: 'a', FIREBREAK_API_TOKEN: 'b', FIREBREAK_AUDIT_KEY: key })).toEqual([]);
    expect(problems({ HOST: '0.0.0.0', FIREBREAK_INSECURE: '1', FIREBREAK_AUDIT_KEY: key })).toEqual([]);
    // Running open waives the key like the tokens: the chain is still keyed, by the data dir's key file.
    expect(problems({ HOST: '0.0.0.0', FIREBREAK_INSECURE: '1' })).toEqual([]);
    expect(problems({ HOST: '::1' })).toEqual([]);
  });

  it('reads FIREBREAK_SECRET_* and never prints them', () => {
    const c = loadConfig({ FIREBREAK_SECRET_DEPLOY_TOKEN: 's3cr3t-value' });
    expect(c.secrets.get('DEPLOY_TOKEN')).toBe('s3cr3t-value');
    expect(JSON.stringify(c)).not.toContain('s3cr3t-value');
  });

  it('serve stops at start-up with one line per bad variable', async () => {
    const { code, stderr } = await runCli(['serve'], { PORT: '70000', HOST: '10.1.2.3', LOG_LEVEL: 'info' });
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines.some((l) => l.trim().startsWith('PORT:'))).toBe(true);
    // HOST is checked only once the values parse; PORT failing is enough to stop.
    expect(stderr).not.toMatch(/at .*\.js:\d+/); // no stack trace
  });
});
