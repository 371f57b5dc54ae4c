/**
 * The repository documents itself: every CLI command, HTTP route and playbook
 * action (with each of its options) is in docs/. The lists come from the code
 * itself: commands from the CLI's dispatch and its help, routes from the real
 * fastify instance of a started server (printRoutes), actions and options from
 * the action registry and the playbook schema. Adding any of them without
 * documenting it fails here, naming what is missing.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { createActionRegistry } from '../../src/actions/index.js';
import { loadConfig } from '../../src/config/index.js';
import { playbookJsonSchema } from '../../src/playbooks/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { ROOT, runCli } from '../helpers/server.js';

const doc = (name: string) => readFile(join(ROOT, 'docs', name), 'utf8');

/** `METHOD /path` pairs from fastify's printRoutes tree (HEAD twins of GET routes left out). */
export function routesFromTree(tree: string): string[] {
  const routes: string[] = [];
  const stack: Array<{ depth: number; path: string }> = [];
  for (const line of tree.split('\n')) {
    const m = /^([│├└─\s]*)(\S.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m || !m[2]) continue;
    const depth = m[1]!.length;
    while (stack.length > 0 && stack.at(-1)!.depth >= depth) stack.pop();
    const path = (stack.at(-1)?.path ?? '') + m[2];
    stack.push({ depth, path });
    for (const method of (m[3] ?? '').split(', ').filter(Boolean)) {
      if (method !== 'HEAD') routes.push(`${method} ${path.replace(/\/+/g, '/')}`);
    }
  }
  return routes;
}

let db: TestDatabase;
let routes: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const config = loadConfig({ DATABASE_URL: db.url, FIREBREAK_PLAYBOOKS: join(ROOT, 'playbooks'), FIREBREAK_POLICIES: join(ROOT, 'policies'), LOG_LEVEL: 'silent', FIREBREAK_WORKERS: '0' });
  const { startApp } = await import('../../src/app/index.js');
  const app = await startApp(config, { listen: false });
  try {
    await app.server.ready();
    routes = routesFromTree(app.server.printRoutes({ commonPrefix: false }));
  } finally {
    await app.stop();
  }
});

afterAll(async () => {
  await db?.drop();
});

describe('docs/ covers the code', () => {
  it('reads routes off a real fastify tree', () => {
    expect(routesFromTree('└── / (GET, HEAD)\n    ├── api/runs (GET, HEAD, POST)\n    │   └── /:id (GET, HEAD)\n    │       └── /abort (POST)\n    └── hooks/generic (POST)\n')).toEqual([
      'GET /',
      'GET /api/runs',
      'POST /api/runs',
      'GET /api/runs/:id',
      'POST /api/runs/:id/abort',
      'POST /hooks/generic',
    ]);
    expect(routes).toContain('POST /hooks/alertmanager');
    expect(routes).toContain('GET /api/runs/:id/timeline');
  });

  it('docs/api.md names every HTTP route the server registers', async () => {
    const text = await doc('api.md');
    const missing = routes.filter((r) => !text.includes(`\`${r}\``));
    expect(missing, 'routes missing from docs/api.md (write them as `METHOD /path`)').toEqual([]);
  });

  it('docs/cli.md names every command the CLI dispatches and every usage line of its help', async () => {
    const text = await doc('cli.md');
    const source = await readFile(join(ROOT, 'src/cli/index.ts'), 'utf8');
    // The top-level dispatch is the switch in main(); subcommand switches live elsewhere.
    const mainBody = source.slice(source.indexOf('export async function main('));
    const dispatched = [...mainBody.matchAll(/^ {6}case '([a-z][a-z-]*)':/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    expect(dispatched.length).toBeGreaterThan(10);
    const help = await runCli(['help'], {});
    const usage = [...help.stdout.matchAll(/^\s+firebreak ([a-z][a-z-]*(?: [a-z][a-z-]*)*)/gm)].map((m) => m[1]!);
    expect(usage.length).toBeGreaterThan(10);
    const missing = [...new Set([...dispatched, ...usage])].filter((c) => !text.includes(`firebreak ${c}`));
    expect(missing, 'commands missing from docs/cli.md').toEqual([]);
  });

  it('docs/playbooks.md documents every action with each of its options, and every playbook and step key', async () => {
    const text = await doc('playbooks.md');
    const sections = text.split(/^### /m);
    const missing: string[] = [];
    for (const name of createActionRegistry().names()) {
      const section = sections.find((s) => s.startsWith(`\`${name}\``));
      if (!section) {
        missing.push(`action ${name} (a "### \`${name}\`" section)`);
        continue;
      }
      const shape = (createActionRegistry().get(name)!.input as z.ZodObject).shape ?? {};
      for (const option of Object.keys(shape)) if (!section.includes(`\`${option}\``)) missing.push(`${name} option ${option}`);
    }
    const schema = playbookJsonSchema() as { properties: Record<string, unknown> & { steps: { items: { properties: Record<string, unknown> } } } };
    for (const key of Object.keys(schema.properties)) if (!text.includes(`\`${key}\``)) missing.push(`playbook key ${key}`);
    for (const key of Object.keys(schema.properties.steps.items.properties)) if (!text.includes(`\`${key}\``)) missing.push(`step key ${key}`);
    expect(missing, 'missing from docs/playbooks.md').toEqual([]);
  });

  it('docs/policies.md documents each entry point the bundle is built with', async () => {
    const text = await doc('policies.md');
    const build = await readFile(join(ROOT, 'scripts/build-policy.mjs'), 'utf8');
    const entrypoints = [...new Set([...build.matchAll(/firebreak\/[a-z_]+/g)].map((m) => m[0]))];
    expect(entrypoints).toContain('firebreak/decision');
    expect(entrypoints.filter((e) => !text.includes(`\`${e}\``)), 'entry points missing from docs/policies.md').toEqual([]);
  });

  it('README links only inside the repository, and every relative link resolves', async () => {
    const { existsSync } = await import('node:fs');
    for (const file of ['README.md', ...['api.md', 'cli.md', 'playbooks.md', 'policies.md', 'deploy.md', 'webhooks.md'].map((f) => `docs/${f}`)]) {
      const text = await readFile(join(ROOT, file), 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^(https?:|mailto:|#)/.test(target!)) continue;
        const path = join(ROOT, file, '..', target!.split('#')[0]!);
        expect(path.startsWith(ROOT), `${file} links outside the repository: ${target}`).toBe(true);
        expect(existsSync(path), `${file} links to a missing file: ${target}`).toBe(true);
      }
      expect(text, file).not.toMatch(/shared\/PRODUCT\.md/);
    }
  });
});
