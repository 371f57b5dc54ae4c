/**
 * The PolicyGate: the loaded bundle behind an atomic swap, reloaded when the
 * bundle file changes. fs.watch gives quick reloads; a periodic stat catches
 * what it misses (network and container file systems, editors' rename dances).
 * A bad new bundle replaces the good one (the operator meant to change the
 * policy): decisions deny and status() says why until a good bundle arrives.
 */
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ApproveInput, ApproveResult, AuthorizeInput, AuthorizeResult, Decision, DecisionInput, Evaluated, PolicyGate, PolicyStatus } from './types.js';
import { ValidationError } from '../errors.js';
import { APPROVE, AUTHORIZE, BUNDLE_FILE, DECISION, ENTRYPOINTS, type Entrypoint, type LoadedBundle, describeError, loadBundle, readBundleFile } from './bundle.js';
import { type ResultOf, checkAnswers, evaluate } from './evaluate.js';

export interface PolicyGateOptions {
  /** Folder holding bundle.tgz (FIREBREAK_POLICIES). */
  dir: string;
  logger: Logger;
  /** Reload when the bundle changes (default true). */
  watch?: boolean;
  /** Use fs.watch besides polling (default true); turn off where inotify misses changes (some network mounts). */
  fsWatch?: boolean;
  /** Stat fallback period, ms (default 2000). */
  pollMs?: number;
  /** Quiet time after a change before reloading, ms (default 100): a copy in progress fires many events. */
  debounceMs?: number;
}

export interface ReloadingPolicyGate extends PolicyGate {
  /** Re-read the bundle now (also what the watcher calls); resolves with the new status. */
  reload(): Promise<PolicyStatus>;
}

/** Either a loaded bundle or why there is none; replaced whole, never mutated. */
type State = { bundle: LoadedBundle; loadedAt: string } | { error: string; loadedAt: string };

export async function createPolicyGate(options: PolicyGateOptions): Promise<ReloadingPolicyGate> {
  const { dir, logger } = options;
  const file = join(dir, BUNDLE_FILE);
  const log = logger.child({ component: 'policy' });
  let state: State = { error: 'policy bundle not loaded yet', loadedAt: new Date().toISOString() };
  let seen = ''; // stat signature of the file behind `state`
  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;

  async function signature(): Promise<string> {
    try {
      const s = await stat(file);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }

  async function load(): Promise<void> {
    const sig = await signature(); // before reading: a write after this shows up as a new signature next poll
    try {
      const files = await readBundleFile(file);
      if ('bundle' in state && state.bundle.hash === files.hash) {
        seen = sig;
        return;
      }
      const bundle = await loadBundle(files);
      const unfit = checkAnswers(bundle);
      if (unfit) throw new Error(unfit);
      state = { bundle, loadedAt: new Date().toISOString() };
      log.info({ bundleHash: bundle.hash, revision: bundle.revision }, 'policy bundle loaded');
    } catch (e) {
      const error = describeError(e);
      if (!('error' in state && state.error === error)) log.error({ file, err: error }, 'policy bundle unusable: denying every decision');
      state = { error, loadedAt: new Date().toISOString() };
    }
    seen = sig;
  }

  // One load at a time, in order: a slow old load can never overwrite a newer one.
  const reload = (): Promise<PolicyStatus> => {
    queue = queue.then(load);
    return queue.then(status);
  };

  function status(): PolicyStatus {
    const s = state;
    if ('bundle' in s) {
      return { ready: true, bundleHash: s.bundle.hash, loadedAt: s.loadedAt, ...(s.bundle.revision ? { revision: s.bundle.revision } : {}) };
    }
    return { ready: false, bundleHash: 'none', reason: s.error, loadedAt: s.loadedAt };
  }

  await reload();

  let watcher: FSWatcher | undefined;
  let poller: NodeJS.Timeout | undefined;
  let debounce: NodeJS.Timeout | undefined;
  if (options.watch ?? true) {
    let pending = false;
    const schedule = () => {
      if (closed) return;
      pending = true;
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        pending = false;
        void reload();
      }, options.debounceMs ?? 100);
      debounce.unref();
    };
    if (options.fsWatch ?? true) {
      try {
        // The folder, not the file: replacing the file by rename would orphan a file watch.
        watcher = watch(dir, { persistent: false }, (_event, name) => {
          if (name === null || name === BUNDLE_FILE) schedule();
        });
        watcher.on('error', (e) => log.warn({ err: describeError(e) }, 'policy folder watch failed; polling only'));
      } catch (e) {
        log.warn({ dir, err: describeError(e) }, 'cannot watch policy folder; polling only');
      }
    }
    poller = setInterval(() => {
      // Only start a wait, never extend one: polls faster than the debounce would starve it.
      if (pending) return;
      void signature().then((sig) => {
        if (sig !== seen && !pending) schedule();
      });
    }, options.pollMs ?? 2000);
    poller.unref();
  }

  const current = (): LoadedBundle | { error: string } => ('bundle' in state ? state.bundle : { error: state.error });
  const noted = <T>(r: Evaluated<T>, entrypoint: string): Evaluated<T> => {
    // Load failures were logged once at load; failures of a loaded bundle are news every time.
    if (r.error && r.bundleHash !== 'none') log.warn({ entrypoint, bundleHash: r.bundleHash, inputHash: r.inputHash, err: r.error }, 'policy failed: denied');
    return r;
  };

  return {
    // async per the interface; the evaluation itself is synchronous and allocation-light.
    async decide(input: DecisionInput): Promise<Evaluated<Decision>> {
      return noted(evaluate(current(), DECISION, input), DECISION);
    },
    async approve(input: ApproveInput): Promise<Evaluated<ApproveResult>> {
      return noted(evaluate(current(), APPROVE, input), APPROVE);
    },
    async authorize(input: AuthorizeInput): Promise<Evaluated<AuthorizeResult>> {
      return noted(evaluate(current(), AUTHORIZE, input), AUTHORIZE);
    },
    status,
    reload,
    async close() {
      closed = true;
      watcher?.close();
      clearInterval(poller);
      clearTimeout(debounce);
      await queue;
    },
  };
}

const isEntrypoint = (name: string): name is Entrypoint => (ENTRYPOINTS as readonly string[]).includes(name);

/**
 * One evaluation against the bundle in `dir`, for `firebreak policy eval`
 * (what-if for policy authors). The input is passed as given, unvalidated, so
 * partial inputs can be tried; failures are fail-closed denies with `error` set.
 */
export async function evaluatePolicy<E extends Entrypoint>(dir: string, entrypoint: E, input: unknown): Promise<Evaluated<ResultOf[E]>>;
export async function evaluatePolicy(dir: string, entrypoint: string, input: unknown): Promise<Evaluated<Decision | ApproveResult | AuthorizeResult>>;
export async function evaluatePolicy(dir: string, entrypoint: string, input: unknown): Promise<Evaluated<Decision | ApproveResult | AuthorizeResult>> {
  if (!isEntrypoint(entrypoint)) {
    throw new ValidationError(`unknown policy entry point ${entrypoint}`, [
      { path: 'entrypoint', message: `must be one of ${ENTRYPOINTS.join(', ')}` },
    ]);
  }
  let bundle: LoadedBundle | { error: string };
  try {
    bundle = await loadBundle(await readBundleFile(join(dir, BUNDLE_FILE)));
  } catch (e) {
    bundle = { error: describeError(e) };
  }
  return evaluate(bundle, entrypoint, input);
}
