/**
 * What the API says about playbooks: the catalog with each playbook's
 * current revision and settings, a playbook's revision history (newest
 * first), and one revision with its source and its diff to another.
 */
import { playbookRails, type Automation } from '../rails/index.js';
import { z } from 'zod';
import { diffRevisions, getRevision, listRevisions, type Engine } from '../engine/index.js';
import { NotFoundError } from '../errors.js';
import { parseWith } from '../ingest/index.js';
import type { Playbook } from '../playbooks/index.js';
import type { Queryable } from '../store/index.js';

const flag = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const revisionsQuery = z.object({ all: flag.optional(), limit: z.coerce.number().int().min(1).max(500).default(100) });
const revisionQuery = z.object({ against: z.string().trim().min(1).default('current') });

function summary(p: Playbook, revision: string) {
  const d = p.definition ?? {};
  return {
    name: p.name,
    description: p.description,
    file: p.file,
    revision,
    triggers: Array.isArray(d.triggers) ? d.triggers : [],
    steps: p.steps.map((s) => ({ id: s.id, action: s.action, impact: s.impact, ...(s.when && { when: s.when }) })),
    concurrency: p.concurrency ?? null,
    channel: p.channel ?? null,
    // Storm limits and the circuit breaker as the file sets them (null: none).
    limits: (d.limits as unknown) ?? null,
    circuitBreaker: (d.circuit_breaker as unknown) ?? null,
  };
}

/** The catalog with each playbook's current revision, its rails (limits, breaker) and whether it is paused. */
export async function playbookSummaries(engine: Engine, automation: Automation) {
  await automation.refresh();
  return (await engine.currentPlaybooks())
    .map(({ playbook, revision }) => ({ ...summary(playbook, revision), ...playbookRails(playbook), ...automation.pauseOf(playbook.name) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

async function current(engine: Engine, name: string): Promise<{ playbook: Playbook; revision: string } | undefined> {
  return (await engine.currentPlaybooks()).find((c) => c.playbook.name === name);
}

/** One playbook as loaded now: its settings, current revision (when first seen) and source. */
export async function playbookDetail(engine: Engine, db: Queryable, name: string) {
  const c = await current(engine, name);
  if (!c) throw new NotFoundError(`playbook ${name} is not loaded (see GET /api/playbooks; its history: GET /api/playbooks/${name}/revisions)`);
  const rev = await getRevision(db, c.revision, c.revision);
  return { ...summary(c.playbook, c.revision), revisionFirstSeenAt: rev.firstSeenAt, definition: c.playbook.definition, source: c.playbook.source };
}

export async function playbookRevisions(engine: Engine, db: Queryable, name: string, query: unknown) {
  const q = parseWith(revisionsQuery, query, 'query');
  const c = await current(engine, name);
  const items = await listRevisions(db, name, c?.revision, { ...(q.all !== undefined && { all: q.all }), limit: q.limit });
  if (items.length === 0 && !c) throw new NotFoundError(`no revisions of playbook ${name}`);
  return items;
}

/** A revision with its definition, source, and a line diff to `against` (the current revision, or another hash). */
export async function playbookRevision(engine: Engine, db: Queryable, name: string, hash: string, query: unknown) {
  const q = parseWith(revisionQuery, query, 'query');
  const c = await current(engine, name);
  const rev = await getRevision(db, hash, c?.revision);
  if (rev.name !== name) throw new NotFoundError(`revision ${hash} is a revision of ${rev.name}, not ${name}`);
  const otherHash = q.against === 'current' ? c?.revision : q.against;
  const other = otherHash ? await getRevision(db, otherHash, c?.revision) : undefined;
  return {
    ...rev,
    diff: other ? { against: other.hash, current: other.current, unified: diffRevisions(rev, other) } : null,
  };
}
