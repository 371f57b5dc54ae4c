/**
 * Playbook tests (`firebreak test [dir]`): each file in `playbooks/tests` is
 * an alert, stubbed step answers, scripted approvals and the expected
 * outcome; each runs as a hermetic dry run and a failure prints what was
 * expected and what the run did.
 */
export { loadTests, playbookTestSchema, playbookTestJsonSchema, playbookTestJsonSchemaText, TEST_SCHEMA_PATH, STEP_OUTCOMES, type LoadedTest, type PlaybookTest } from './spec.js';
export { checkRun, runTest, passed, type DryRunBackend, type Mismatch, type TestResult } from './run.js';
export { formatResult, testCommand, type TestCommandDeps } from './command.js';
