/**
 * Wires the concerns into one running service: store -> playbooks -> policy ->
 * engine -> ingest -> HTTP. `firebreak serve` calls startApp; tests do too.
 */
import { watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { FastifyInstance } from 'fastify';
import { Access, OidcLogin } from '../access/index.js';
import { CheckpointWriter, loadAuditKey } from '../audit/index.js';
import { createActionRegistry, loadCustomActions, type ActionRegistry } from '../actions/index.js';
import { registerApi } from '../api/routes.js';
import { buildServer } from '../api/server.js';
import { isLocalMode, maskUrlCredentials, sensitiveValues, type Config } from '../config/index.js';
import { registerConsole } from '../console/index.js';
import { Engine } from '../engine/index.js';
import { Automation } from '../rails/index.js';
import { Ingestor } from '../ingest/index.js';
import { createMetrics } from '../metrics/index.js';
import { formatProblem, loadPlaybooks, type Playbook, type Problem } from '../playbooks/index.js';
import { createPolicyGate, type ReloadingPolicyGate } from '../policy/index.js';
import { SilenceCache, Silences } from '../rails/index.js';
import { Scheduler } from '../schedule/index.js';
import { createSlack } from '../slack/index.js';
import { openStore, type Store } from '../store/index.js';
import { createRedactor, Timeline } from '../timeline/index.js';

export interface App {
  config: Config;
  logger: Logger;
  store: Store;
  engine: Engine;
  server: FastifyInstance;
  url: string;
  stop(): Promise<void>;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
};

/**
 * JSON lines for log collectors; readable lines (pino-pretty) when a person
 * watches a terminal. Redaction happens before either: no line carries a
 * credential, since every message and every plain object or error logged
 * passes through the secret redactor (all encoded forms of `sensitive`) and
 * has URL passwords masked. Objects of other classes (fastify's request and
 * reply) are left to pino's serializers and path redaction.
 */
export function createLogger(level: string, options: { readable?: boolean; destination?: pino.DestinationStream; sensitive?: readonly string[] } = {}): Logger {
  const redact = createRedactor(options.sensitive ?? [], { alsoMask: maskUrlCredentials });
  const clean = (v: unknown): unknown => {
    if (typeof v === 'string') return redact(v);
    if (v instanceof Error) return redact(pino.stdSerializers.err(v));
    if (Array.isArray(v)) return redact(v);
    if (isPlainObject(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = x instanceof Error ? redact(pino.stdSerializers.err(x)) : isPlainObject(x) || Array.isArray(x) || typeof x === 'string' ? redact(x) : x;
      return out;
    }
    return v;
  };
  const settings: pino.LoggerOptions = {
    level,
    base: { service: 'firebreak' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Belt and braces: headers that carry credentials never reach the logs.
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', '*.token', '*.password', 'headers.authorization'], censor: '[redacted]' },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map(clean) as Parameters<typeof method>);
      },
    },
  };
  if (options.destination) return pino(settings, options.destination);
  if (!(options.readable ?? process.stdout.isTTY === true)) return pino(settings);
  return pino(settings, pretty({ colorize: true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' }));
}

/** Playbooks, reloaded when their folder changes; the last good set stays in use while a file is broken. */
class PlaybookCatalog {
  playbooks: Playbook[] = [];
  problems: Problem[] = [];
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<(playbooks: Playbook[]) => void> = [];

  constructor(
    private readonly dir: string,
    private readonly actions: ActionRegistry,
    private readonly logger: Logger,
  ) {}

  async load(): Promise<void> {
    const { playbooks, problems, warnings } = await loadPlaybooks(this.dir, { actions: this.actions });
    this.problems = problems;
    for (const p of problems) this.logger.error({ problem: formatProblem(p) }, 'playbook problem');
    for (const w of warnings) this.logger.warn({ problem: formatProblem(w) }, 'playbook warning');
    const broken = new Set(problems.map((p) => p.file));
    // Keep the previous version of a playbook whose file is now broken.
    const kept = this.playbooks.filter((old) => broken.has(old.file) && !playbooks.some((p) => p.name === old.name));
    this.playbooks = [...playbooks, ...kept];
    this.logger.info({ playbooks: this.playbooks.map((p) => p.name), problems: problems.length }, 'playbooks loaded');
    for (const listener of this.listeners) listener(this.playbooks);
  }

  /** Called after every (re)load with the playbooks in use (schedules re-register). */
  onLoad(listener: (playbooks: Playbook[]) => void): void {
    this.listeners.push(listener);
  }

  watch(): void {
    try {
      this.watcher = watch(this.dir, () => {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => void this.load().catch((err) => this.logger.error({ err }, 'playbook reload failed')), 200);
      });
      this.watcher.on('error', () => {});
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'cannot watch playbooks folder; reload needs a restart');
    }
  }

  close(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
  }
}

export async function startApp(config: Config, options: { logger?: Logger; listen?: boolean } = {}): Promise<App> {
  const logger = options.logger ?? createLogger(config.logLevel, { sensitive: sensitiveValues(config) });
  // The key first: a server that cannot sign its timeline must not start (or start a database).
  const audit = await loadAuditKey({ material: config.auditKey, dataDir: config.dataDir, create: true });
  if (audit.created) logger.info({ file: audit.created }, 'created the audit key file (local mode); back it up with the data dir: without it the timeline cannot be verified');
  if (audit.warning) logger.warn(audit.warning);
  logger.info({ keyId: audit.key.id, source: audit.key.source }, 'audit key loaded');
  const store = await openStore({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger, poolSize: Math.max(10, config.workers * 2 + 4) });
  const cleanups: Array<() => Promise<void> | void> = [() => store.close()];
  try {
    const actions = createActionRegistry(await loadCustomActions(join(config.playbooksDir, 'actions')));
    const catalog = new PlaybookCatalog(config.playbooksDir, actions, logger.child({ component: 'playbooks' }));
    await catalog.load();
    catalog.watch();
    cleanups.push(() => catalog.close());
    const policy: ReloadingPolicyGate = await createPolicyGate({ dir: config.policiesDir, logger, watch: true });
    cleanups.push(() => policy.close());
    const timeline = new Timeline(audit.key, config.secrets.values());
    // Silences: the cache ingest asks for every alert (on the database's clock), invalidated at once by acts in this process.
    const silenceCache = new SilenceCache(store.pool, timeline.clock);
    const checkpoints = new CheckpointWriter({ pool: store.pool, key: audit.key, logger, intervalMs: config.auditCheckpointMs });
    await checkpoints.start();
    // Shutdown runs cleanups in reverse: this one runs after engine.stop and slack.stop (pushed later) and before store.close, so the last checkpoint seals this replica's final events.
    cleanups.push(() => checkpoints.stop());
    // The engine is created just below; the gauge asks it at scrape time.
    let stuckRuns: () => Promise<number> = async () => 0;
    const metrics = createMetrics(store.pool, logger, { stuckRuns: () => stuckRuns() });
    // Every act (start, abort, answer, tokens, pause, silences) is asked of firebreak/authorize and recorded, whatever the channel.
    const access = new Access({ pool: store.pool, timeline, policy: () => policy, mode: isLocalMode(config) ? 'local' : 'authenticated', logger: logger.child({ component: 'access' }) });
    // The kill switch and circuit breakers (src/rails): ingest, the workers and every channel read the same pauses.
    let engineRef: Engine | undefined;
    const automation = new Automation({
      pool: store.pool,
      timeline,
      access,
      logger: logger.child({ component: 'rails' }),
      playbooks: () => catalog.playbooks,
      onRunEvents: (runId, events) => engineRef?.ingestHooks.emit(runId, events),
      onChange: () => metrics.automationPaused(automation.pauses),
      silences: silenceCache,
    });
    await automation.start();
    cleanups.push(() => automation.stop());
    const engine = new Engine({
      pool: store.pool,
      databaseUrl: store.url,
      timeline,
      actions,
      policy: () => policy,
      playbooks: () => catalog.playbooks,
      logger,
      secrets: config.secrets,
      httpAllow: config.httpAllow,
      playbooksDir: config.playbooksDir,
      defaultChannel: config.slack.defaultChannel,
      workers: config.workers,
      leaseMs: config.leaseMs,
      pollMs: config.pollMs,
      onTakeover: () => metrics.leaseTakeover(),
      rails: automation,
      onAutomationChange: () => void automation.refresh().catch((err) => logger.warn({ err: (err as Error).message }, 'could not read automation pauses')),
    });
    engineRef = engine;
    stuckRuns = () => engine.countStuckRuns();
    engine.onEvent((runId, events) => metrics.runEvents(runId, events));
    // Each playbook content is stored once (playbook_revisions) as soon as it is loaded.
    const storeRevisions = (playbooks: Playbook[]) => void engine.storeRevisions(playbooks).catch((err) => logger.warn({ err: (err as Error).message }, 'cannot store playbook revisions yet; runs store them when they start'));
    storeRevisions(catalog.playbooks);
    catalog.onLoad(storeRevisions);
    // Silenced alerts are stored and recorded as `suppressed` (ingest asks the cache; its statement re-checks).
    const ingestor = new Ingestor(store.pool, timeline, engine.ingestHooks, logger, { silences: silenceCache });
    const silences = new Silences({ pool: store.pool, timeline, access, cache: silenceCache });
    const oidc = config.oidc ? new OidcLogin({ config: config.oidc, publicUrl: config.publicUrl, pool: store.pool, logger }) : undefined;
    const slack = await createSlack({ config, logger, pool: store.pool, engine, timeline, policy: () => policy, access, automation, silences });
    ingestor.onStored((notification, result) => {
      metrics.alertsReceived(notification.source, notification.alerts, result.stored ? result.episodes.filter((e) => e.deliveries === 1).length : 0);
      metrics.alertOutcomes(result.outcomes);
      if (result.startedRuns.length > 0) engine.poke();
    });
    const server = await buildServer({
      config,
      logger,
      pool: store.pool,
      ingestor,
      readiness: [
        { name: 'playbooks', check: () => ({ ok: catalog.playbooks.length > 0 || catalog.problems.length === 0, detail: `${catalog.playbooks.length} loaded, ${catalog.problems.length} problems` }) },
        { name: 'policy', check: () => { const s = policy.status(); return { ok: s.ready, detail: s.reason ?? `bundle ${s.bundleHash.slice(0, 12)}` }; } },
      ],
      extend: async (app) => {
        app.get('/metrics', { config: { access: 'metrics' } }, async (_request, reply) => {
          const { contentType, body } = await metrics.render();
          return reply.type(contentType).send(body);
        });
        registerConsole(app, { config, pool: store.pool, engine, access, automation, silences, ...(oidc && { oidc }), logger });
        registerApi(app, { config, pool: store.pool, engine, access, automation, silences });
        // Slack's routes are public to the guard: Bolt verifies every request's signature itself.
        await app.register(async (scope) => {
          scope.addHook('onRoute', (route) => {
            route.config = { access: 'public', ...route.config };
          });
          slack.registerRoutes(scope);
        });
      },
    });
    // Started in dependency order and stopped in reverse: Slack consumes the engine's events, so it
    // starts first and stops last; the HTTP server (which feeds both) stops first.
    await slack.start();
    cleanups.push(() => slack.stop());
    engine.start();
    cleanups.push(() => engine.stop());
    // Every replica schedules every cron trigger; the run's dedup key makes one run per tick.
    const scheduler = new Scheduler({ startRun: (request) => engine.startRun(request), paused: (playbook) => automation.paused(playbook), logger: logger.child({ component: 'schedule' }) });
    scheduler.sync(catalog.playbooks);
    catalog.onLoad((playbooks) => scheduler.sync(playbooks));
    cleanups.push(() => scheduler.stop());
    let url = '';
    if (options.listen !== false) {
      url = await server.listen({ port: config.port, host: config.host });
      logger.info({ url, publicUrl: config.publicUrl, embeddedPostgres: store.embedded }, 'firebreak is serving');
    }
    cleanups.push(() => server.close());
    let stopped = false;
    return {
      config,
      logger,
      store,
      engine,
      server,
      url,
      async stop() {
        if (stopped) return;
        stopped = true;
        for (const cleanup of [...cleanups].reverse()) await Promise.resolve(cleanup()).catch((err) => logger.warn({ err }, 'shutdown step failed'));
      },
    };
  } catch (err) {
    for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => {});
    throw err;
  }
}
