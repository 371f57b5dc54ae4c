/** Public surface of the actions concern: built-ins, the registry, custom-action loading, dry-run descriptions. */
export { builtinActions, createActionRegistry, loadCustomActions, parseActionInput, describeCall, type ActionRegistry } from './registry.js';
export { isHostAllowed } from './allow.js';
export { parseDuration } from './duration.js';
export { defineAction, done, type ActionContext, type ActionDefinition, type ActionResult } from './types.js';
