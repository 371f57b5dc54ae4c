/**
 * Policies: the compiled OPA bundle, evaluated in process with opa-wasm.
 * This file is the folder's only public surface.
 */
export { ACTIONS } from './types.js';
export type {
  AccessMode,
  Action,
  ApproveInput,
  ApproveResult,
  AuthMethod,
  AuthorizeInput,
  AuthorizeResult,
  PolicyUser,
  Decision,
  DecisionInput,
  Evaluated,
  PolicyGate,
  PolicyStatus,
} from './types.js';
export { createPolicyGate, evaluatePolicy, type PolicyGateOptions, type ReloadingPolicyGate } from './gate.js';
export { checkBundleFreshness, type Freshness } from './sources.js';
export { runPolicyTests, findOpa, installedOpaPath, OPA_VERSION, type CommandResult } from './opa.js';
export { BUNDLE_FILE, ENTRYPOINTS, type Entrypoint } from './bundle.js';
export { SOURCES_FILE } from './sources.js';
