import { ActionError } from '../errors.js';
import type { ActionContext } from './types.js';

/**
 * The engine records a dry run's side effects as "would call" and never calls run().
 * Refusing here as well means an engine bug cannot turn a dry run into a real rollback.
 */
export function refuseInDryRun(action: string, ctx: ActionContext): void {
  if (ctx.dryRun) throw new ActionError(`${action} changes the world and must not run in a dry run (the engine should record it as "would call")`, { retryable: false });
}
