/**
 * A playbook's revisions (playbook_revisions, owned by the engine): its
 * history, one revision's definition and source, and a readable line diff
 * between two revisions (the YAML source when both kept one, else the
 * normalised definition as YAML).
 */
import { createTwoFilesPatch } from 'diff';
import { stringify } from 'yaml';
import { NotFoundError } from '../errors.js';
import type { Queryable } from '../store/index.js';

export interface RevisionSummary {
  hash: string;
  name: string;
  /** The file it was loaded from; null: only ever sent with a dry-run request. */
  file: string | null;
  firstSeenAt: string;
  /** Real runs that executed it (dry runs not counted). */
  runs: number;
  /** The catalog's revision of the playbook now. */
  current: boolean;
}

export interface Revision extends RevisionSummary {
  definition: Record<string, unknown>;
  /** The file's text when first seen (null before revisions kept it). */
  source: string | null;
}

const LIST_REVISIONS = `
  select pr.hash, pr.name, pr.file, pr.first_seen_at,
         (select count(*) from runs r where r.revision = pr.hash and not r.dry_run)::int as runs
  from playbook_revisions pr
  where pr.name = $1::text and ($2::boolean or pr.file is not null or pr.hash = $3::text)
  order by pr.first_seen_at desc, pr.hash
  limit $4::int`;

const REVISION = `
  select pr.hash, pr.name, pr.file, pr.first_seen_at, pr.definition, pr.source,
         (select count(*) from runs r where r.revision = pr.hash and not r.dry_run)::int as runs
  from playbook_revisions pr where pr.hash = $1::text`;

const HEX = /^[0-9a-f]{6,64}$/;

interface Row {
  hash: string;
  name: string;
  file: string | null;
  first_seen_at: Date;
  runs: number;
  definition?: Record<string, unknown>;
  source?: string | null;
}

function summary(r: Row, current: string | undefined): RevisionSummary {
  return { hash: r.hash, name: r.name, file: r.file, firstSeenAt: r.first_seen_at.toISOString(), runs: r.runs, current: r.hash === current };
}

/** A playbook's revisions, newest first; `all` adds those only ever sent with a dry run. */
export async function listRevisions(db: Queryable, name: string, current: string | undefined, options: { all?: boolean; limit?: number } = {}): Promise<RevisionSummary[]> {
  const { rows } = await db.query<Row>(LIST_REVISIONS, [name, options.all ?? false, current ?? null, options.limit ?? 100]);
  return rows.map((r) => summary(r, current));
}

/** One revision by its hash (a unique prefix of at least 6 hex digits is enough, like git). */
export async function getRevision(db: Queryable, hash: string, current?: string): Promise<Revision> {
  const h = hash.toLowerCase();
  if (!HEX.test(h)) throw new NotFoundError(`revision ${hash} not found`);
  const { rows } = h.length === 64
    ? await db.query<Row>(REVISION, [h])
    : await db.query<Row>(REVISION.replace('pr.hash = $1::text', "pr.hash like $1::text || '%'"), [h]);
  if (rows.length !== 1) throw new NotFoundError(rows.length === 0 ? `revision ${hash} not found` : `revision ${hash} is ambiguous: give more digits`);
  const r = rows[0]!;
  return { ...summary(r, current), definition: r.definition ?? {}, source: r.source ?? null };
}

/** What a person reads of a revision: its YAML source, or its normalised definition as YAML. */
export function revisionText(r: Pick<Revision, 'source' | 'definition'>): string {
  return r.source ?? stringify(r.definition, { lineWidth: 0 });
}

/** A unified line diff from revision `a` to revision `b` ('' when they read the same). */
export function diffRevisions(a: Revision, b: Revision): string {
  // Both sources, or both definitions: never a file against a normalised form.
  const [ta, tb] = a.source !== null && b.source !== null ? [a.source, b.source] : [stringify(a.definition, { lineWidth: 0 }), stringify(b.definition, { lineWidth: 0 })];
  if (ta === tb) return '';
  return createTwoFilesPatch(`${a.name} @ ${a.hash.slice(0, 12)}`, `${b.name} @ ${b.hash.slice(0, 12)}`, ta, tb, a.firstSeenAt, b.firstSeenAt, { context: 3 });
}
