import type { Logger } from 'pino';
import type { z } from 'zod';

/** What the engine hands an action for one attempt of one step. */
export interface ActionContext {
  runId: string;
  stepId: string;
  attempt: number;
  /** `<run>:<step>:<attempt>`; HTTP actions send it as `Idempotency-Key`. */
  idempotencyKey: string;
  /** Aborted when the step's `timeout` passes or the run is aborted. */
  signal: AbortSignal;
  logger: Logger;
  /** Hosts (host, host:port, *.suffix) that network actions may call: FIREBREAK_HTTP_ALLOW. */
  httpAllow: readonly string[];
  /** Folder of playbooks; `exec` runs scripts from `<playbooksDir>/scripts/` only. */
  playbooksDir: string;
  /** State returned by this step's previous `poll` result (prometheus.wait, wait); undefined on first call. */
  state: unknown;
  /** When the step first started (ms since epoch), stable across polls and restarts. */
  stepStartedAt: number;
  /** Current time source; injectable for tests. */
  now: () => number;
  /** True for a dry run: side-effecting calls must be described, not made. */
  dryRun: boolean;
  /**
   * False once this process may no longer hold the run (its lease was lost, or
   * not renewed in time, e.g. after the process was frozen): a request must
   * not leave the process then. Checked at the last moment, when the request
   * is written to its connection. Absent: always true.
   */
  leaseHeld?: () => boolean;
}

/** An action either finishes with an output, or asks to be called again later (a DB timer, not a sleep). */
export type ActionResult =
  | { kind: 'done'; output: unknown }
  | { kind: 'poll'; afterMs: number; state: unknown; progress?: string };

export interface ActionDefinition<Input = unknown> {
  /** Name used in playbooks, e.g. `http.request`. */
  name: string;
  /** zod schema of the rendered `with:` block. */
  input: z.ZodType<Input>;
  /** Whether this call changes the world (used by dry runs and the policy `history`). */
  sideEffect: (input: Input) => boolean;
  /** A short target string for policy `history` (host, script, query), e.g. `deploy.internal`. */
  target?: (input: Input) => string;
  /**
   * The fully rendered call a dry run records as "would call" (method/url/headers/body,
   * script/args, ...). Optional: without it the engine records the parsed input.
   */
  describe?: (input: Input, ctx?: Pick<ActionContext, 'idempotencyKey'>) => unknown;
  run(input: Input, ctx: ActionContext): Promise<ActionResult>;
}

/** Helper so custom actions get their input type inferred from the schema. */
export function defineAction<S extends z.ZodType>(def: {
  name: string;
  input: S;
  sideEffect: (input: z.output<S>) => boolean;
  target?: (input: z.output<S>) => string;
  describe?: (input: z.output<S>, ctx?: Pick<ActionContext, 'idempotencyKey'>) => unknown;
  run(input: z.output<S>, ctx: ActionContext): Promise<ActionResult>;
}): ActionDefinition<z.output<S>> {
  return def as unknown as ActionDefinition<z.output<S>>;
}

export const done = (output: unknown): ActionResult => ({ kind: 'done', output });
