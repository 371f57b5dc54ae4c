/** Shared bits of the webhook source tests: a server on its own database, and episode/run lookups. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { TestDatabase } from '../helpers/db.js';
import { httpJson } from '../helpers/server.js';

export const FIXTURES = join(import.meta.dirname, 'fixtures');

export async function fixture<T = any>(name: string): Promise<T> {
  return JSON.parse(await readFile(join(FIXTURES, name), 'utf8')) as T;
}

/** A one-step playbook triggered by `source` alerts matching `matchers`. */
export function playbook(name: string, source: string, matchers: string[], extra = ''): string {
  return `
name: ${name}
triggers:
  - source: ${source}
    matchers: ${JSON.stringify(matchers)}
${extra}
steps:
  - id: context
    action: note
    with: { text: "\${{ alert.summary }}" }
`;
}

export interface EpisodeRow {
  id: number;
  fingerprint: string;
  starts_at: Date;
  status: string;
  severity: string;
  summary: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  generator_url: string;
  deliveries: number;
  ends_at: Date | null;
  runs: Array<{ id: string; playbook: string; trigger: string; status: string }>;
}

export async function episodes(db: TestDatabase, source: string, fingerprint?: string): Promise<EpisodeRow[]> {
  const { rows } = await db.pool.query<EpisodeRow>(
    `select e.id::int as id, e.fingerprint, e.starts_at, e.status, e.severity, e.summary, e.labels, e.annotations, e.generator_url,
            e.deliveries, e.ends_at,
            coalesce((select json_agg(json_build_object('id', r.id, 'playbook', r.playbook, 'trigger', r.trigger, 'status', r.status)
                                      order by r.created_at) from runs r where r.episode_id = e.id), '[]'::json) as runs
     from alert_episodes e where e.source = $1 and ($2::text is null or e.fingerprint = $2) order by e.starts_at, e.fingerprint`,
    [source, fingerprint ?? null],
  );
  return rows;
}

export async function timelineKinds(db: TestDatabase, runId: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ kind: string }>('select kind from timeline_events where run_id = $1 order by seq', [runId]);
  return rows.map((r) => r.kind);
}

export async function notificationCount(db: TestDatabase, source: string): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>('select count(*)::int as n from alert_notifications where source = $1', [source]);
  return rows[0]!.n;
}

/** Post raw bytes (signatures are over the exact body). */
export function postRaw(url: string, body: string | Buffer, headers: Record<string, string> = {}) {
  return httpJson('POST', url, body, { 'content-type': 'application/json', ...headers });
}

/** A 400 whose details name `path` (dotted) with a message matching `message`. */
export function expectFieldError(res: { status: number; body: any }, path: string, message?: RegExp): void {
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.body.error).toEqual(expect.any(String));
  const detail = (res.body.details as Array<{ path: string; message: string }>).find((d) => d.path === path);
  expect(detail, `no detail for ${path} in ${JSON.stringify(res.body.details)}`).toBeDefined();
  if (message) expect(detail!.message).toMatch(message);
}
