import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { formatProblem, loadPlaybooks, validatePlaybooks, type Problem } from '../../src/playbooks/index.js';

const ACTIONS = new Set(['http.request', 'prometheus.query', 'prometheus.wait', 'slack.message', 'wait', 'note', 'exec']);

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fb-playbooks-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(name: string, text: string): Promise<string> {
  await writeFile(join(dir, name), text.replace(/^\n/, ''));
  return join(dir, name);
}

/** Problems of a single file, as `line: message` so a test reads like the CLI output. */
async function problemsOf(yaml: string, actions: Parameters<typeof validatePlaybooks>[1] = ACTIONS): Promise<Problem[]> {
  await write('p.yaml', yaml);
  const problems = await validatePlaybooks(dir, actions);
  for (const p of problems) expect(p.file).toBe(join(dir, 'p.yaml'));
  return problems;
}

const lines = (ps: Problem[]) => ps.map((p) => `${p.line}: ${p.message}`);

const GOOD = `
name: good
description: fine
triggers:
  - source: alertmanager
    matchers: [alertname="X", severity=~"critical|page"]
  - schedule: "*/15 * * * *"
    timezone: Europe/Berlin
concurrency: { key: "\${{ alert.labels.service }}", limit: 2 }
channel: "#inc-\${{ alert.labels.service }}"
on_resolved: abort
steps:
  - id: q
    action: prometheus.query
    with: { url: http://prom:9090, query: up }
  - id: act
    action: http.request
    impact: high
    when: \${{ steps.q.output.value > 0 }}
    timeout: 1m30s
    retry: { attempts: 3, backoff: 500ms, max_backoff: 1m }
    on_failure: continue
    approval: required
    approval_timeout: 1h
    on_timeout: escalate
    escalate_to: ["@leads"]
    with:
      method: POST
      url: https://x.internal/\${{ alert.labels.service }}
      headers: { Authorization: "Bearer \${{ secrets.ANYTHING_GOES }}" }
    compensate:
      action: http.request
      with: { method: POST, url: "https://x.internal/undo/\${{ steps.act.output.body.id }}" }
`;

describe('loading', () => {
  it('builds the model: camelCase, durations in ms, defaults, file, hash, raw definition', async () => {
    const file = await write('good.yaml', GOOD);
    await mkdir(join(dir, 'scripts'));
    await writeFile(join(dir, 'scripts', 'ignored.yaml'), 'not: a playbook');
    await writeFile(join(dir, 'README.md'), '# not yaml');
    const { playbooks, problems } = await loadPlaybooks(dir, { actions: ACTIONS });
    expect(problems).toEqual([]);
    expect(playbooks).toHaveLength(1);
    const pb = playbooks[0]!;
    expect(pb.file).toBe(file);
    expect(pb.sourceHash).toBe(createHash('sha256').update(GOOD.replace(/^\n/, '')).digest('hex'));
    expect(pb.definition.name).toBe('good');
    expect(JSON.parse(JSON.stringify(pb.definition))).toEqual(pb.definition);
    expect(pb).toMatchObject({ name: 'good', description: 'fine', onResolved: 'abort', concurrency: { key: '${{ alert.labels.service }}', limit: 2 } });
    expect(pb.triggers[1]).toEqual({ kind: 'schedule', schedule: '*/15 * * * *', timezone: 'Europe/Berlin' });
    expect(pb.triggers[0]).toMatchObject({ kind: 'alert', source: 'alertmanager', matchers: [{ name: 'alertname', op: '=', value: 'X' }, { name: 'severity', op: '=~' }] });
    const [q, act] = pb.steps;
    expect(q).toEqual({
      id: 'q', action: 'prometheus.query', with: { url: 'http://prom:9090', query: 'up' }, impact: 'low',
      retry: { attempts: 1, backoffMs: 10_000, maxBackoffMs: 300_000 }, onFailure: 'abort', approval: 'policy',
      approvalTimeoutMs: 1_800_000, onTimeout: 'abort', escalateTo: [],
    });
    expect(act).toMatchObject({
      impact: 'high', when: 'steps.q.output.value > 0', timeoutMs: 90_000, retry: { attempts: 3, backoffMs: 500, maxBackoffMs: 60_000 },
      onFailure: 'continue', approval: 'required', approvalTimeoutMs: 3_600_000, onTimeout: 'escalate', escalateTo: ['@leads'],
      compensate: { action: 'http.request' },
    });
  });

  it('formats problems as file:line: message', () => {
    expect(formatProblem({ file: 'playbooks/a.yaml', line: 7, message: 'steps[0].action: unknown action "x"' })).toBe('playbooks/a.yaml:7: steps[0].action: unknown action "x"');
  });

  it('reports a missing folder instead of throwing', async () => {
    const { problems } = await loadPlaybooks(join(dir, 'nope'), { actions: ACTIONS });
    expect(problems[0]?.message).toMatch(/cannot read the playbooks folder/);
  });
});

describe('problems point at the right file and line', () => {
  it('YAML syntax errors', async () => {
    const ps = await problemsOf(`
name: broken
steps:
  - id: a
    action: note
     with: { text: hi }
`);
    // The parser sees `note` turn into a multi-line key: it blames the line it starts on.
    expect(ps[0]!.line).toBe(4);
    expect(ps[0]!.message).toMatch(/^YAML: /);
    expect(lines(await problemsOf('name: x\nsteps:\n  - id: a\n    action: note\n    with: { text: "hi }\n')).every((l) => /^5: YAML: /.test(l))).toBe(true);
  });

  it('duplicate YAML keys', async () => {
    expect(lines(await problemsOf(`
name: dup
name: dup2
steps: [{ id: a, action: note, with: { text: hi } }]
`))[0]).toMatch(/^2: YAML: .*[Uu]nique/);
  });

  it('an empty file', async () => {
    expect(lines(await problemsOf('# nothing\n'))).toEqual(['1: the file is empty: expected a playbook (name, triggers, steps)']);
  });

  it('schema errors name the field path', async () => {
    const ps = lines(await problemsOf(`
name: Bad_Name
description: x
triggers:
  - source: nagios
    matchers: [a="b"]
steps:
  - id: a
    action: note
    with: { text: hi }
    timeout: 30
    impact: huge
    on_falure: continue
  - id: 2b
    with: { text: hi }
    retry: { attempts: 0, backoff: soon }
`));
    expect(ps).toEqual([
      '1: name: must match [a-z0-9-]+',
      expect.stringMatching(/^4: triggers\[0\]\.source: Invalid option/),
      '10: steps[0].timeout: Invalid input: expected string, received number',
      '11: steps[0].impact: Invalid option: expected one of "low"|"high"',
      '12: steps[0].on_falure: unknown field "on_falure"',
      '13: steps[1].id: must match [a-z_][a-z0-9_]* (it is used as steps.<id> in expressions)',
      '13: steps[1].action: is required',
      expect.stringMatching(/^15: steps\[1\]\.retry\.attempts: Too small/),
      '15: steps[1].retry.backoff: must be a duration like 500ms, 30s, 2m, 1h or 1h30m',
    ]);
  });

  it('a missing steps list and a step that is not a map', async () => {
    expect(lines(await problemsOf('name: x\n'))).toEqual(['1: steps: is required']);
    expect(lines(await problemsOf('name: x\nsteps:\n  - just a string\n'))).toEqual([expect.stringMatching(/^3: steps\[0\]: Invalid input: expected object/)]);
  });

  it('unknown actions, in steps and in compensations', async () => {
    expect(lines(await problemsOf(`
name: x
steps:
  - id: a
    action: http.reqest
    with: {}
    compensate:
      action: nope
`))).toEqual([
      expect.stringMatching(/^4: steps\[0\]\.action: unknown action "http\.reqest" \(known: exec, http\.request, note/),
      expect.stringMatching(/^7: steps\[0\]\.compensate\.action: unknown action "nope"/),
    ]);
  });

  it('action inputs against their zod schema, except values that are only known once rendered', async () => {
    const actions = new Map([
      ['scale', { input: z.strictObject({ replicas: z.number().int(), url: z.url(), mode: z.enum(['up', 'down']).default('up') }) }],
    ]);
    expect(lines(await problemsOf(`
name: x
steps:
  - id: a
    action: scale
    with:
      replicas: "\${{ alert.labels.count }}"
      mode: sideways
      extra: 1
  - id: b
    action: scale
    with:
      url: "\${{ alert.labels.url }}"
      replicas: 2
`, actions))).toEqual([
      '5: steps[0].with.url: is required by this action',
      expect.stringMatching(/^7: steps\[0\]\.with\.mode: Invalid option/),
      '8: steps[0].with.extra: unknown field "extra" for this action',
    ]);
  });

  it('bad CEL in ${{ }}, when:, concurrency.key and channel', async () => {
    expect(lines(await problemsOf(`
name: x
concurrency:
  key: \${{ alert.labels. }}
channel: "#inc-\${{ steps.a.output }}"
steps:
  - id: a
    action: note
    with:
      text: "hello \${{ alert.labels.service"
      data:
        - \${{ alrt.labels.service }}
  - id: b
    action: note
    when: steps.a.output.text ==
    with: { text: ok }
  - id: c
    action: note
    when: alert.labels.x == "\${{ run.id }}"
    with: { text: ok }
`))).toEqual([
      '3: concurrency.key: ${{ alert.labels. }}: syntax error at 1:13: found . but expecting end of input',
      '4: channel: ${{ steps.a.output }}: steps are not available here: this is evaluated when the run starts',
      '9: steps[0].with.text: unterminated "${{" (missing "}}")',
      '11: steps[0].with.data[0]: ${{ alrt.labels.service }}: unknown name "alrt" (available: alert, steps, run, secrets)',
      '14: steps[1].when: syntax error at 1:21: found = but expecting end of input',
      '18: steps[2].when: write a bare expression (e.g. steps.x.output.value > 1), not ${{ }} inside it',
    ]);
  });

  it('duplicate step ids', async () => {
    expect(lines(await problemsOf(`
name: x
steps:
  - id: a
    action: note
    with: { text: one }
  - id: a
    action: note
    with: { text: two }
`))).toEqual(['6: steps[1].id: duplicate step id "a" (first used by steps[0])']);
  });

  it('steps.<id> references to unknown, later or the same step', async () => {
    expect(lines(await problemsOf(`
name: x
steps:
  - id: first
    action: note
    when: steps.second.output.value > 1
    with: { text: "\${{ steps.first.output.text }}" }
  - id: second
    action: note
    with:
      text: "\${{ steps.first.output.text }} \${{ steps['thrid'].output }}"
      data: \${{ secrets.UNKNOWN_IS_FINE }}
    compensate:
      action: note
      with: { text: "\${{ steps.second.output.text }} \${{ steps.third.output }}" }
  - id: third
    action: note
    with: { text: ok }
`))).toEqual([
      '5: steps[0].when: steps.second is not available here: a step can only use the output of earlier steps',
      '6: steps[0].with.text: steps.first is not available here: a step can only use the output of earlier steps',
      '10: steps[1].with.text: unknown step "thrid" in steps.thrid (steps: first, second, third)',
      '14: steps[1].compensate.with.text: steps.third is not available here: a step can only use the output of earlier steps',
    ]);
  });

  it('bad matchers, cron expressions, time zones and trigger shapes', async () => {
    expect(lines(await problemsOf(`
name: x
triggers:
  - matchers:
      - alertname="ok"
      - severity=~"(unclosed"
      - just-a-word
      - team="a"b"
  - schedule: "61 * * * *"
    timezone: Mars/Olympus
  - schedule: "0 9 * * MON-FRI"
    matchers: [a="b"]
  - source: grafana
    timezone: UTC
  - {}
steps: [{ id: a, action: note, with: { text: hi } }]
`))).toEqual([
      expect.stringMatching(/^5: triggers\[0\]\.matchers\[1\]: bad matcher "severity=~\\"\(unclosed\\"": invalid regex/),
      '6: triggers[0].matchers[2]: bad matcher "just-a-word": expected name="value", name!="value", name=~"regex" or name!~"regex"',
      expect.stringMatching(/^7: triggers\[0\]\.matchers\[3\]: bad matcher .*bad quoting/),
      '8: triggers[1].schedule: bad cron expression "61 * * * *": 61 is a invalid expression for minute',
      '9: triggers[1].timezone: unknown time zone "Mars/Olympus"',
      '10: triggers[2]: a trigger has either `schedule` or `source`/`matchers`, not both',
      '13: triggers[3].timezone: `timezone` only applies to a `schedule` trigger',
      '14: triggers[4]: a trigger needs `matchers` (and optionally `source`), or `schedule`',
    ]);
  });

  it('escalation without approvers, and a backoff cap below the backoff', async () => {
    expect(lines(await problemsOf(`
name: x
steps:
  - id: a
    action: note
    with: { text: hi }
    on_timeout: escalate
    retry: { attempts: 2, backoff: 1m, max_backoff: 10s }
`))).toEqual([
      '6: steps[0].on_timeout: `on_timeout: escalate` needs `escalate_to` (a list of approvers)',
      '7: steps[0].retry.max_backoff: must not be shorter than `backoff`',
    ]);
  });

  it('duplicate playbook names across files: the first file (by name) keeps it', async () => {
    const a = await write('a.yaml', 'name: same\nsteps: [{ id: a, action: note, with: { text: hi } }]\n');
    const b = await write('b.yml', '# the copy\nname: same\nsteps: [{ id: a, action: note, with: { text: hi } }]\n');
    const { playbooks, problems } = await loadPlaybooks(dir, { actions: ACTIONS });
    expect(playbooks.map((p) => p.file)).toEqual([a]);
    expect(problems.map(formatProblem)).toEqual([`${b}:2: name: duplicate playbook name "same" (already used by ${a})`]);
  });

  it('keeps good files loaded when another file is bad', async () => {
    await write('good.yaml', GOOD);
    const bad = await write('bad.yaml', 'name: bad\nsteps: [{ id: a, action: nope }]\n');
    const { playbooks, problems } = await loadPlaybooks(dir, { actions: ACTIONS });
    expect(playbooks.map((p) => p.name)).toEqual(['good']);
    expect(problems.map((p) => [p.file, p.line])).toEqual([[bad, 2]]);
  });
});
