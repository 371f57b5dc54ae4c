/**
 * Writes schema/playbook-test.schema.json (editors' schema for playbook test
 * files) from the zod schema; a test checks the committed file is current.
 * Regenerate with `npx tsc && node dist/src/playbook-tests/write-schema.js`.
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { playbookTestJsonSchemaText, TEST_SCHEMA_PATH } from './spec.js';

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await writeFile(TEST_SCHEMA_PATH, playbookTestJsonSchemaText());
  console.log(`wrote ${TEST_SCHEMA_PATH}`);
}
