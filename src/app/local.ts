/**
 * An engine in this process for commands that need one without a server
 * (`firebreak test`): a scratch database on the same Postgres server
 * (DATABASE_URL's, or the embedded cluster of FIREBREAK_DATA_DIR), the
 * compiled policies, no Slack, no schedules, no HTTP. The scratch database is
 * dropped on close, so nothing it ran is left in anyone's timeline.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import type { Logger } from 'pino';
import { createActionRegistry, loadCustomActions } from '../actions/index.js';
import { AuditKey } from '../audit/index.js';
import { Secrets } from '../config/index.js';
import { Engine, getRun } from '../engine/index.js';
import type { DryRunBackend } from '../playbook-tests/index.js';
import { startDryRuns, startRunBody, type RunJson, type TimelineJson } from '../replay/index.js';
import { FirebreakError } from '../errors.js';
import { createPolicyGate } from '../policy/index.js';
import { createPool, migrate, runningEmbeddedUrl, startEmbeddedPostgres, type Pool } from '../store/index.js';
import { renderTimeline, Timeline } from '../timeline/index.js';

export interface LocalEngine {
  engine: Engine;
  pool: Pool;
  /** Where the scratch database lives (credentials masked by the caller before printing). */
  server: string;
  close(): Promise<void>;
}

export interface LocalEngineOptions {
  /** The server to make the scratch database on; unset: the embedded cluster of `dataDir`. */
  databaseUrl?: string;
  dataDir: string;
  policiesDir: string;
  /** Where `exec` scripts and custom actions live. */
  playbooksDir: string;
  logger: Logger;
  progress?: (message: string) => void;
}

export class ScratchDatabaseError extends FirebreakError {
  readonly code = 'scratch_database';
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

export async function startLocalEngine(options: LocalEngineOptions): Promise<LocalEngine> {
  const cleanups: Array<() => Promise<unknown>> = [];
  const close = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
  try {
    let base = options.databaseUrl ?? (await runningEmbeddedUrl(options.dataDir));
    if (!base) {
      const pg = await startEmbeddedPostgres({ dataDir: options.dataDir, ...(options.progress && { progress: options.progress }) });
      cleanups.push(() => pg.stop());
      base = pg.url;
    }
    const name = `firebreak_scratch_${randomBytes(6).toString('hex')}`;
    const admin = new pg.Client({ connectionString: base, connectionTimeoutMillis: 5_000 });
    try {
      await admin.connect();
      await admin.query(`create database ${name}`);
    } catch (err) {
      throw new ScratchDatabaseError(`cannot create a scratch database on ${new URL(base).host}: ${(err as Error).message} (the role needs CREATEDB; or unset DATABASE_URL to use the embedded Postgres)`);
    } finally {
      await admin.end().catch(() => {});
    }
    cleanups.push(async () => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    });
    const url = withDatabase(base, name);
    // No logger: the drop at close ends its idle connections, which is expected.
    const pool = createPool(url, undefined, 8);
    cleanups.push(() => pool.end());
    await migrate(pool);
    const actions = createActionRegistry(await loadCustomActions(join(options.playbooksDir, 'actions')));
    const policy = await createPolicyGate({ dir: options.policiesDir, logger: options.logger, watch: false });
    cleanups.push(async () => policy.close());
    // A scratch chain: its own key, thrown away with the database.
    const timeline = new Timeline(new AuditKey(randomBytes(32), 'scratch'), []);
    const engine = new Engine({
      pool,
      databaseUrl: url,
      timeline,
      actions,
      policy: () => policy,
      playbooks: () => [],
      logger: options.logger,
      secrets: new Secrets({}),
      httpAllow: [],
      playbooksDir: options.playbooksDir,
      workers: 4,
      pollMs: 50,
    });
    engine.start();
    cleanups.push(() => engine.stop(2_000));
    return { engine, pool, server: new URL(base).host, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Dry runs on an engine in this process (`firebreak test`), as `requestedBy` asks them. */
export async function localDryRunBackend(options: LocalEngineOptions, requestedBy: string): Promise<DryRunBackend & { label: string; close(): Promise<void> }> {
  const local = await startLocalEngine(options);
  return {
    label: `an engine in this process, on a scratch database at ${local.server}`,
    async start(body) {
      const result = await startDryRuns({ engine: local.engine, db: local.pool }, startRunBody.parse(body), requestedBy);
      return result.runs.map((r) => ({ runId: r.runId, playbook: r.playbook }));
    },
    run: async (id) => (await getRun(local.pool, id)) as unknown as RunJson,
    timeline: async (id) => (await renderTimeline(local.pool, id, 'json')) as TimelineJson,
    close: () => local.close(),
  };
}
