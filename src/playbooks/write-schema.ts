/**
 * JSON Schema of a playbook file for editors (yaml-language-server, VS Code), generated
 * from the zod schema's input side so the two cannot drift. A test checks the committed
 * file is current; regenerate with `npx tsc && node dist/src/playbooks/write-schema.js`.
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { playbookSchema } from './schema.js';

export const SCHEMA_PATH = 'schema/playbook.schema.json';

export function playbookJsonSchema(): Record<string, unknown> {
  // draft-07: the dialect editors' YAML plugins support best.
  const schema = z.toJSONSchema(playbookSchema, { io: 'input', target: 'draft-07', unrepresentable: 'any' });
  return { ...schema, $id: 'https://firebreak.dev/schema/playbook.schema.json', title: 'Firebreak playbook' };
}

/** The exact text committed at `schema/playbook.schema.json`. */
export function playbookJsonSchemaText(): string {
  return `${JSON.stringify(playbookJsonSchema(), null, 2)}\n`;
}

export async function writePlaybookSchema(path = SCHEMA_PATH): Promise<string> {
  await writeFile(path, playbookJsonSchemaText());
  return path;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  console.log(`wrote ${await writePlaybookSchema()}`);
}
