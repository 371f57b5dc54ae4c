/** The postmortem view of one run, read from the database: the run row and its chain. */
import { NotFoundError } from '../errors.js';
import type { Queryable } from '../store/index.js';
import { readChain } from './chain.js';
import { timelineMarkdown } from './markdown.js';
import { viewFromEvents, type StoryRun, type TimelineOptions, type TimelineView } from './view.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A run row with the definition it executes (its own copy, or its revision's). */
export const RUN_FOR_STORY = `
  select r.id, r.playbook, r.status, r.trigger, r.started_by, r.dry_run, r.alert,
         coalesce(r.definition, pr.definition) as definition,
         r.created_at, r.started_at, r.finished_at, r.abort_reason, r.outcome
  from runs r left join playbook_revisions pr on pr.hash = r.revision
  where r.id = $1::uuid`;

/** The postmortem view of one run, read from its chain. Throws NotFoundError for an unknown id. */
export async function buildTimelineView(db: Queryable, runId: string, options: TimelineOptions = {}): Promise<TimelineView> {
  if (!UUID.test(runId)) throw new NotFoundError(`run ${runId} not found`);
  const { rows } = await db.query<StoryRun>(RUN_FOR_STORY, [runId]);
  const run = rows[0];
  if (!run) throw new NotFoundError(`run ${runId} not found`);
  const events = await readChain(db, runId);
  return viewFromEvents(run, events, options);
}

export async function renderTimeline(db: Queryable, runId: string, format: 'json' | 'md', options: TimelineOptions = {}): Promise<TimelineView | string> {
  const view = await buildTimelineView(db, runId, options);
  return format === 'md' ? timelineMarkdown(view) : view;
}
