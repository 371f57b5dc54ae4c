/**
 * Dry run and replay: start dry runs of an alert (normalised, raw, or a
 * stored episode's) against the server's playbooks or sent ones, and read
 * back, print and diff what they did. The engine does the simulating
 * (src/engine/dry-run.ts); this folder is the request and the report.
 */
export { startRunBody, dryRunFields, isReplayRequest, usesDryRunFields, checkDryRunBody, startDryRuns, normalisePayload, parseSentPlaybooks, type StartRunBody, type DryRunsResult, type StartedDryRun, type AlertOutcome } from './start.js';
export { buildReport, formatReport, formatRequest, formatDecision, isSettled, type RunReport, type StepReport, type DecisionReport, type WouldCall, type RunJson, type TimelineJson } from './report.js';
export { diffRuns, formatDivergences, type Divergence } from './diff.js';
export { replayCommand, readPlaybookFolder, REPLAY_USAGE, type ReplayDeps, type ReplayApiResponse } from './cli.js';
