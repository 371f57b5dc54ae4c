/**
 * `firebreak validate` reports every problem in every file in one pass:
 * `file:line: message` per problem, exit 1 if there is any. A structural
 * problem (a duplicate step id, a bad field) does not hide the unknown action
 * or the broken `when:` below it, nor the problems of the next file.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { playbooksDir } from '../helpers/playbooks.js';
import { ROOT, runCli } from '../helpers/server.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('firebreak validate', () => {
  it('reports every problem of every file, each as file:line: message, and exits 1', async () => {
    const dir = await playbooksDir({
      'a-broken.yaml': `name: broken
steps:
  - id: check
    action: note
    with: { text: hi }
  - id: check
    action: note
    with: { text: again }
  - id: act
    action: kubernetes.restart
    with: { target: x }
  - id: verify
    action: wait
    when: steps.check.output.value >
    with: { duration: 1s }
  - id: late
    action: note
    timeout: soon
    with: { text: "\${{ steps.nope.output }}" }
`,
      'b-also-broken.yaml': `description: no name here
steps:
  - id: first
    action: http.reqest
    with: { url: http://x }
`,
    });
    dirs.push(dir);
    const res = await runCli(['validate', dir], {});
    expect(res.code).toBe(1);
    const a = join(dir, 'a-broken.yaml');
    const b = join(dir, 'b-also-broken.yaml');
    const lines = res.stdout.trim().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(new RegExp(`^${a}:6: steps\\[1\\]\\.id: duplicate step id "check"`)),
      expect.stringMatching(new RegExp(`^${a}:10: steps\\[2\\]\\.action: unknown action "kubernetes.restart"`)),
      expect.stringMatching(new RegExp(`^${a}:14: steps\\[3\\]\\.when: `)),
      expect.stringMatching(new RegExp(`^${a}:18: steps\\[4\\]\\.timeout: must be a duration`)),
      expect.stringMatching(new RegExp(`^${a}:19: steps\\[4\\]\\.with\\.text: unknown step "nope"`)),
      expect.stringMatching(new RegExp(`^${b}:1: name: is required`)),
      expect.stringMatching(new RegExp(`^${b}:4: steps\\[0\\]\\.action: unknown action "http.reqest"`)),
    ]);
    expect(res.stderr).toMatch(/7 problems found/);
  });

  it('passes the sample playbooks', async () => {
    const res = await runCli(['validate', join(ROOT, 'playbooks')], {});
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
  });
});
