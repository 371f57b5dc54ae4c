/**
 * The playbook test file (`playbooks/tests/*.yaml`): an alert, stubbed
 * answers for steps, scripted approval answers, and the expected outcome.
 * One zod schema is the parser and (its input side) the JSON Schema for
 * editors, schema/playbook-test.schema.json.
 */
import { readdir, readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { ALERT_SOURCES } from '../ingest/index.js';

const answer = z.enum(['approve', 'reject', 'expire', 'cancel']);

/** What a step did, as `firebreak test` and `firebreak replay` report it. */
export const STEP_OUTCOMES = ['taken', 'skipped', 'failed', 'denied', 'would ask approval', 'not reached'] as const;
export const RUN_STATUSES = ['succeeded', 'failed', 'aborted', 'cancelled'] as const;

const rfc3339 = z.string().refine((v) => /^\d{4}-\d\d-\d\dT/.test(v) && !Number.isNaN(Date.parse(v)), 'must be an RFC 3339 time, e.g. 2024-05-14T09:15:00Z');

export const playbookTestSchema = z
  .strictObject({
    name: z.string().min(1).optional().meta({ description: 'What the test shows; default: the file name' }),
    alert: z
      .union([z.string().min(1), z.record(z.string(), z.unknown())])
      .meta({ description: 'The alert: inline (a normalised alert with source and fingerprint, or a payload as `source` sends it), or the path of a JSON file, relative to this file' }),
    source: z.enum(ALERT_SOURCES).optional().meta({ description: 'Who sent a raw payload (default alertmanager); not needed for a normalised alert' }),
    playbook: z.string().min(1).optional().meta({ description: 'The playbook under test; needed when the alert starts several' }),
    now: rfc3339.optional().meta({ description: "The time the policy sees as `now`; default: the alert's startsAt, so the test answers the same on any day" }),
    stubs: z
      .record(z.string(), z.record(z.string(), z.unknown()))
      .default({})
      .meta({ description: 'Per step id, the output fields its call answers with: { value: 0.08 } for prometheus.*, { status, headers, body } for http.request (a status it does not expect fails the step), { exitCode, stdout } for exec' }),
    approvals: z
      .record(z.string(), z.union([answer, z.array(answer).min(1)]))
      .default({})
      .meta({ description: 'Per step id, how its approval is answered (one per round): approve, reject, expire, cancel. An approval with no answer here stops the run ("would ask approval")' }),
    expect: z
      .strictObject({
        runs: z.array(z.string()).optional().meta({ description: 'The playbooks the alert starts, all of them' }),
        status: z.enum(RUN_STATUSES).optional().meta({ description: 'How the run ends (cancelled: it stopped at an approval with no answer)' }),
        steps: z.record(z.string(), z.enum(STEP_OUTCOMES)).optional().meta({ description: 'Per step id, what it did' }),
        approvals: z.array(z.string()).optional().meta({ description: 'The step ids that asked for approval, all of them' }),
        requests: z
          .record(z.string(), z.record(z.string(), z.unknown()))
          .optional()
          .meta({ description: "Per step id, fields of its rendered input (method, url, headers, body, query, script, args, text): only the fields given are compared; the run's id reads as <run>, a secret as [withheld secret NAME]" }),
      })
      .meta({ description: 'The expected outcome; only what is given is checked' }),
  })
  .meta({ title: 'Firebreak playbook test' });

export type PlaybookTest = z.output<typeof playbookTestSchema>;

export interface LoadedTest {
  file: string;
  name: string;
  spec: PlaybookTest;
  /** The alert as sent: the parsed file when `alert` names one. */
  alert: unknown;
}

export interface TestFileProblem {
  file: string;
  message: string;
}

/** JSON Schema of a test file for editors (draft-07, like the playbook schema). */
export function playbookTestJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(playbookTestSchema, { io: 'input', target: 'draft-07', unrepresentable: 'any' });
  return { ...schema, $id: 'https://firebreak.dev/schema/playbook-test.schema.json', title: 'Firebreak playbook test' };
}

export const TEST_SCHEMA_PATH = 'schema/playbook-test.schema.json';

export function playbookTestJsonSchemaText(): string {
  return `${JSON.stringify(playbookTestJsonSchema(), null, 2)}\n`;
}

async function loadOne(file: string): Promise<LoadedTest> {
  const text = await readFile(file, 'utf8');
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new Error(`${file}:${lc.linePos(e.pos[0]).line}: YAML: ${e.message}`);
  }
  const parsed = playbookTestSchema.safeParse(doc.toJS({ maxAliasCount: 100 }) ?? {});
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((i) => `${file}: ${i.path.join('.') || '(file)'}: ${i.message}`).join('\n'));
  }
  const spec = parsed.data;
  let alert: unknown = spec.alert;
  if (typeof spec.alert === 'string') {
    const path = isAbsolute(spec.alert) ? spec.alert : resolve(dirname(file), spec.alert);
    try {
      alert = JSON.parse(await readFile(path, 'utf8'));
    } catch (e) {
      throw new Error(`${file}: alert: cannot read ${path}: ${(e as Error).message}`);
    }
  }
  return { file, name: spec.name ?? file.replace(/^.*\//, '').replace(/\.ya?ml$/i, ''), spec, alert };
}

/** Every *.yaml / *.yml test in `dir`, by file name; a file that does not parse is a problem, not a crash. */
export async function loadTests(dir: string): Promise<{ tests: LoadedTest[]; problems: TestFileProblem[] }> {
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && /\.ya?ml$/i.test(e.name)).map((e) => e.name).sort();
  } catch (e) {
    return { tests: [], problems: [{ file: dir, message: `cannot read the tests folder: ${(e as Error).message}` }] };
  }
  const tests: LoadedTest[] = [];
  const problems: TestFileProblem[] = [];
  for (const name of names) {
    const file = join(dir, name);
    try {
      tests.push(await loadOne(file));
    } catch (e) {
      problems.push({ file, message: (e as Error).message });
    }
  }
  return { tests, problems };
}
