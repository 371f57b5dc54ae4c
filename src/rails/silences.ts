/**
 * Silences (maintenance windows): Alertmanager matchers, all of which must
 * hold, for a time. Alerts they match are stored and recorded as
 * `suppressed` instead of starting runs (ingest asks SilenceCache).
 *
 * Matchers are Alertmanager's: the text form (`service="checkout"`,
 * `{service="checkout", env=~"prod|stage"}`, several strings) and the v2 API
 * object form (`{ name, value, isRegex, isEqual }`), parsed and matched by
 * the playbooks' own matcher (RE2, fully anchored). They are stored as
 * `[{ name, op, value }]` and always shown back as Alertmanager text.
 *
 * Creating and expiring are acts: asked of `firebreak/authorize`
 * (`silence.create`, `silence.expire`) as the authenticated identity, and
 * recorded on the automation chain in the transaction that changes the row.
 */
import { randomUUID } from 'node:crypto';
import type { Access, Identity } from '../access/index.js';
import { checkStorableText, ConflictError, NotFoundError, ValidationError, type FieldProblem } from '../errors.js';
import { matcherHolds, parseDuration, parseMatcher, type Matcher, type MatchOp } from '../playbooks/index.js';
import { runStatement, withTransaction, type DatabaseClock, type Pool } from '../store/index.js';
import type { Timeline } from '../timeline/index.js';
import * as Q from './queries.js';

/** The longest a silence may last: a maintenance window, not a way to switch a playbook off (use pause). */
export const MAX_SILENCE_MS = 30 * 86_400_000;
export const MAX_SILENCE_TEXT = '30 days';

/** A matcher as Alertmanager's v2 API sends it (`isEqual` defaults to true). */
export interface AlertmanagerMatcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual?: boolean;
}

/** What `silences.matchers` holds, one per matcher. */
export interface StoredMatcher {
  name: string;
  op: MatchOp;
  value: string;
}

export type SilenceState = 'active' | 'pending' | 'expired';

/** A silence as the API, CLI, console and Slack show it. */
export interface SilenceView {
  id: string;
  /** Alertmanager text, e.g. `service="checkout"`. */
  matchers: string[];
  startsAt: string;
  endsAt: string;
  reason: string;
  createdBy: string;
  createdAt: string;
  state: SilenceState;
  /** When it stopped silencing: expired by a person, or its end passed (then expiredBy is null). */
  expiredAt: string | null;
  expiredBy: string | null;
}

/** What SilenceCache.match answers for a silenced alert. */
export interface SilenceMatch {
  id: string;
  matchers: string[];
  createdBy: string;
  reason: string;
  endsAt: string;
}

export type MatcherInput = string | AlertmanagerMatcher | ReadonlyArray<string | AlertmanagerMatcher>;

// ---- matchers -----------------------------------------------------------------------------

/**
 * Split text on separator characters outside double quotes (where a
 * backslash escapes the next character) and, with `braces`, outside `{...}`
 * selectors; parts are trimmed, empty ones dropped. Matcher lists here,
 * slash-command words in Slack.
 */
export function splitOutsideQuotes(text: string, isSeparator: (c: string) => boolean, options: { braces?: boolean } = {}): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  let braces = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted && c === '\\' && i + 1 < text.length) {
      current += c + text[i + 1];
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (options.braces && !quoted && c === '{') braces++;
    else if (options.braces && !quoted && c === '}') braces = Math.max(0, braces - 1);
    if (!quoted && braces === 0 && isSeparator(c)) {
      parts.push(current);
      current = '';
      continue;
    }
    current += c;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

/** One text: a single matcher, or a `{...}` selector / comma list of them. */
function parseMatcherText(text: string, path: string, problems: FieldProblem[]): Matcher[] {
  let body = text.trim();
  if (body.startsWith('{')) {
    if (!body.endsWith('}')) {
      problems.push({ path, message: `unclosed { in ${JSON.stringify(text)}` });
      return [];
    }
    body = body.slice(1, -1);
  }
  const out: Matcher[] = [];
  const parts = splitOutsideQuotes(body, (c) => c === ',');
  if (parts.length === 0) problems.push({ path, message: 'empty matcher' });
  for (const part of parts) {
    try {
      out.push(parseMatcher(part));
    } catch (err) {
      problems.push({ path, message: (err as Error).message });
    }
  }
  return out;
}

function fromAlertmanager(m: AlertmanagerMatcher, path: string, problems: FieldProblem[]): Matcher | undefined {
  if (typeof m !== 'object' || m === null || typeof m.name !== 'string' || typeof m.value !== 'string' || typeof m.isRegex !== 'boolean' || (m.isEqual !== undefined && typeof m.isEqual !== 'boolean')) {
    problems.push({ path, message: 'expected a matcher text (name="value") or { name, value, isRegex, isEqual? }' });
    return undefined;
  }
  const equal = m.isEqual ?? true;
  const op: MatchOp = m.isRegex ? (equal ? '=~' : '!~') : equal ? '=' : '!=';
  try {
    return parseMatcher(`${m.name}${op}${quote(m.value)}`);
  } catch (err) {
    problems.push({ path, message: (err as Error).message });
    return undefined;
  }
}

function quote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** A matcher as Alertmanager prints it: `service="checkout"`, `env=~"prod|stage"`. */
export function matcherText(m: StoredMatcher): string {
  // Quoted as Alertmanager prints (Go's strconv.Quote): `x=~"\\d+"` reads back as the same regex.
  return `${m.name}${m.op}${quote(m.value)}`;
}

/**
 * Parse silence matchers in any of Alertmanager's forms. Throws a
 * ValidationError naming each bad one (`matchers[1]`). Refused like
 * Alertmanager refuses them: no matcher at all, or only matchers that match
 * the empty string (`foo=""` alone would silence every alert).
 */
export function parseSilenceMatchers(input: unknown): Matcher[] {
  const problems: FieldProblem[] = [];
  const items: unknown[] = Array.isArray(input) ? input : input === undefined || input === null ? [] : [input];
  const out: Matcher[] = [];
  items.forEach((item, i) => {
    const path = Array.isArray(input) ? `matchers[${i}]` : 'matchers';
    const parsed = typeof item === 'string' ? parseMatcherText(item, path, problems) : [fromAlertmanager(item as AlertmanagerMatcher, path, problems)].filter((m) => m !== undefined);
    for (const m of parsed) {
      // Stored as jsonb, which refuses NUL and lone surrogates.
      const text = `${m.name}${m.value}`;
      if (text.includes('\u0000') || !text.isWellFormed()) problems.push({ path, message: `${JSON.stringify(m.name)}: a NUL or lone surrogate cannot be stored` });
      else out.push(m);
    }
  });
  if (problems.length > 0) throw new ValidationError('invalid silence matchers', problems);
  if (out.length === 0) throw new ValidationError('a silence needs at least one matcher, e.g. service="checkout"', [{ path: 'matchers', message: 'required' }]);
  if (out.every((m) => matcherHolds(m, {}))) {
    throw new ValidationError('at least one matcher must not match the empty string (as in Alertmanager): these would silence every alert', [
      { path: 'matchers', message: `${out.map(matcherText).join(', ')} all match an alert without those labels` },
    ]);
  }
  return out;
}

const stored = (ms: readonly Matcher[]): StoredMatcher[] => ms.map((m) => ({ name: m.name, op: m.op, value: m.value }));

// ---- rows ---------------------------------------------------------------------------------

interface SilenceRow {
  id: string;
  matchers: StoredMatcher[];
  starts_at: Date;
  ends_at: Date;
  reason: string;
  created_by: string;
  created_at: Date;
  expired_at: Date | null;
  expired_by: string | null;
  state: SilenceState;
}

function toView(r: SilenceRow): SilenceView {
  return {
    id: r.id,
    matchers: r.matchers.map(matcherText),
    startsAt: r.starts_at.toISOString(),
    endsAt: r.ends_at.toISOString(),
    reason: r.reason,
    createdBy: r.created_by,
    createdAt: r.created_at.toISOString(),
    state: r.state,
    expiredAt: r.expired_at?.toISOString() ?? null,
    expiredBy: r.expired_by,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkId(id: string): string {
  if (!UUID.test(id)) throw new NotFoundError(`no silence ${id}`);
  return id.toLowerCase();
}

// ---- the cache ingest asks ----------------------------------------------------------------

interface LiveSilence {
  matchers: Matcher[];
  startsAt: number;
  endsAt: number;
  match: SilenceMatch;
}

/**
 * Which silence, if any, silences an alert now. Ingest asks for every alert,
 * so this never queries per alert: it loads the silences that may still
 * silence (not expired, ending after now) at most once per `maxAgeMs`
 * (default 1 s; another replica's new silence shows within that), and decides
 * "active" (starts_at <= now < ends_at) against the database clock, so a
 * pending silence starts and an active one ends on time between loads.
 * Acts in this process (Silences) invalidate it at once.
 */
export class SilenceCache {
  private readonly maxAgeMs: number;
  private live: LiveSilence[] = [];
  private loadedAt = Number.NEGATIVE_INFINITY;
  /** Bumped by invalidate(): a load that began before it cannot make the cache fresh. */
  private generation = 0;
  private loading: { generation: number; promise: Promise<void> } | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly clock: DatabaseClock,
    options: { maxAgeMs?: number } = {},
  ) {
    this.maxAgeMs = options.maxAgeMs ?? 1_000;
  }

  /** The first active silence whose matchers all hold for these labels (oldest start first). */
  async match(labels: Readonly<Record<string, string>>): Promise<SilenceMatch | undefined> {
    if (performance.now() - this.loadedAt >= this.maxAgeMs) await this.refresh();
    if (this.live.length === 0) return undefined;
    const now = this.clock.now();
    for (const s of this.live) {
      if (s.startsAt <= now && now < s.endsAt && s.matchers.every((m) => matcherHolds(m, labels))) return s.match;
    }
    return undefined;
  }

  /** Forget what was loaded: the next match loads again. */
  invalidate(): void {
    this.generation++;
    this.loadedAt = Number.NEGATIVE_INFINITY;
  }

  private refresh(): Promise<void> {
    if (this.loading && this.loading.generation === this.generation) return this.loading.promise;
    const generation = this.generation;
    const promise = this.load(generation).finally(() => {
      if (this.loading?.promise === promise) this.loading = undefined;
    });
    this.loading = { generation, promise };
    return promise;
  }

  private async load(generation: number): Promise<void> {
    const sent = Date.now();
    const { rows } = await runStatement<{ id: string | null; matchers: StoredMatcher[]; starts_at: Date; ends_at: Date; reason: string; created_by: string; now: Date }>(this.pool, Q.LOAD_LIVE_SILENCES, []);
    this.clock.observe(rows[0]?.now, sent, Date.now());
    const live: LiveSilence[] = [];
    for (const r of rows) {
      if (r.id === null) continue;
      // Stored matchers were valid when written; RE2 compiles them again here.
      const matchers = r.matchers.map((m) => parseMatcher(`${m.name}${m.op}${quote(m.value)}`));
      live.push({
        matchers,
        startsAt: r.starts_at.getTime(),
        endsAt: r.ends_at.getTime(),
        match: { id: r.id, matchers: r.matchers.map(matcherText), createdBy: r.created_by, reason: r.reason, endsAt: r.ends_at.toISOString() },
      });
    }
    // Only the newest load counts: one begun before an invalidate() may miss the act that caused it.
    if (generation !== this.generation) return;
    this.live = live;
    this.loadedAt = performance.now();
  }
}

// ---- the acts -----------------------------------------------------------------------------

export interface NewSilence {
  /** Any of Alertmanager's forms; see parseSilenceMatchers. */
  matchers: unknown;
  /** How long from its start (`2h`, `1d`; a number is ms). Give this or endsAt. */
  duration?: string | number;
  /** RFC 3339; must be in the future. */
  endsAt?: string;
  /** RFC 3339; omitted or past: now. A future start makes the silence pending. */
  startsAt?: string;
  reason: string;
}

export type SilenceListState = 'current' | 'expired' | 'all';

export interface SilencesDeps {
  pool: Pool;
  timeline: Timeline;
  access: Access;
  /** Invalidated by every act here, so this process sees its own silences at once. */
  cache?: SilenceCache;
}

function durationMs(value: string | number, path: string): number {
  const ms = typeof value === 'number' ? value : parseDuration(value.trim());
  if (ms === undefined || !Number.isFinite(ms)) throw new ValidationError(`${path} must be a duration such as 30m, 2h or 1d`, [{ path, message: `not a duration: ${JSON.stringify(value)}` }]);
  if (ms <= 0) throw new ValidationError(`${path} must be longer than zero`, [{ path, message: 'must be > 0' }]);
  if (ms > MAX_SILENCE_MS) throw new ValidationError(`a silence lasts at most ${MAX_SILENCE_TEXT} (pause the playbook to stop it for longer)`, [{ path, message: `at most ${MAX_SILENCE_TEXT}` }]);
  return ms;
}

function time(value: string, path: string): number {
  const t = /^\d{4}-\d\d-\d\dT/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(t)) throw new ValidationError(`${path} must be an RFC 3339 time`, [{ path, message: `not a time: ${JSON.stringify(value)}` }]);
  return t;
}

/** Create, list, get and expire silences: the acts every channel (API, CLI, console, Slack) shares. */
export class Silences {
  constructor(private readonly deps: SilencesDeps) {}

  /**
   * Create a silence as `who` (recorded as its author). Checked before the
   * policy is asked: matchers, reason, a duration in (0, 30 days]; then
   * against the database's clock: the end in the future.
   */
  async create(who: Identity, input: NewSilence): Promise<SilenceView> {
    const matchers = parseSilenceMatchers(input.matchers);
    const reason = typeof input.reason === 'string' ? checkStorableText(input.reason.trim(), 'reason') : '';
    if (!reason) throw new ValidationError('say why: a silence needs a reason (it is shown with every alert it suppresses)', [{ path: 'reason', message: 'required' }]);
    if (input.duration === undefined && input.endsAt === undefined) {
      throw new ValidationError('say how long: give a duration (for: "2h") or endsAt', [{ path: 'for', message: 'required (or endsAt)' }]);
    }
    if (input.duration !== undefined && input.endsAt !== undefined) {
      throw new ValidationError('give a duration or endsAt, not both', [{ path: 'endsAt', message: 'conflicts with the duration' }]);
    }
    const forMs = input.duration !== undefined ? durationMs(input.duration, 'for') : undefined;
    const startsAtIn = input.startsAt !== undefined ? time(input.startsAt, 'startsAt') : undefined;
    const endsAtIn = input.endsAt !== undefined ? time(input.endsAt, 'endsAt') : undefined;
    const texts = stored(matchers).map(matcherText);
    await this.deps.access.require(who, 'silence.create', {
      matchers: texts,
      reason,
      ...(forMs !== undefined && { duration_seconds: forMs / 1000 }),
      ...(input.startsAt !== undefined && { starts_at: new Date(startsAtIn!).toISOString() }),
      ...(input.endsAt !== undefined && { ends_at: new Date(endsAtIn!).toISOString() }),
    });
    const view = await withTransaction(this.deps.pool, async (client) => {
      const { rows } = await runStatement<{ now: Date }>(client, Q.SILENCE_NOW, []);
      const now = rows[0]!.now.getTime();
      // A start in the past means now, as in Alertmanager.
      const startsAt = Math.max(now, startsAtIn ?? now);
      const endsAt = endsAtIn ?? startsAt + forMs!;
      if (endsAt <= now) throw new ValidationError('endsAt must be in the future', [{ path: 'endsAt', message: `${new Date(endsAt).toISOString()} is not after now (${new Date(now).toISOString()})` }]);
      if (endsAt <= startsAt) throw new ValidationError('endsAt must be after startsAt', [{ path: 'endsAt', message: `not after ${new Date(startsAt).toISOString()}` }]);
      if (endsAt - startsAt > MAX_SILENCE_MS) throw new ValidationError(`a silence lasts at most ${MAX_SILENCE_TEXT} (pause the playbook to stop it for longer)`, [{ path: 'endsAt', message: `more than ${MAX_SILENCE_TEXT} after its start` }]);
      const inserted = await runStatement<SilenceRow>(client, Q.INSERT_SILENCE, [randomUUID(), JSON.stringify(stored(matchers)), new Date(startsAt), new Date(endsAt), reason, who.id]);
      const v = toView(inserted.rows[0]!);
      await this.deps.timeline.appendAutomation(client, { kind: 'silence.created', actor: who.id, data: { silenceId: v.id, matchers: v.matchers, startsAt: v.startsAt, endsAt: v.endsAt, reason } });
      return v;
    });
    this.deps.cache?.invalidate();
    return view;
  }

  /** Silences, newest first: `current` (active and pending; the default), `expired` or `all`. Reading needs no policy. */
  async list(options: { state?: SilenceListState; limit?: number } = {}): Promise<SilenceView[]> {
    const { rows } = await runStatement<SilenceRow>(this.deps.pool, Q.LIST_SILENCES, [options.state ?? 'current', options.limit ?? 500]);
    return rows.map(toView);
  }

  async get(id: string): Promise<SilenceView> {
    const { rows } = await runStatement<SilenceRow>(this.deps.pool, Q.SILENCE_BY_ID, [checkId(id)]);
    if (rows.length === 0) throw new NotFoundError(`no silence ${id}`);
    return toView(rows[0]!);
  }

  /**
   * Expire a silence now, as `who`. An active or pending one stops silencing
   * at once. One that has already expired (by a person or because its end
   * passed) is a ConflictError (409) naming when and by whom: nothing changes
   * and nothing is recorded.
   */
  async expire(who: Identity, id: string, reason?: string): Promise<SilenceView> {
    const existing = await this.get(id);
    await this.deps.access.require(who, 'silence.expire', { silence_id: existing.id, matchers: existing.matchers, created_by: existing.createdBy, state: existing.state });
    const why = checkStorableText(reason?.trim() || 'no reason given', 'reason');
    const view = await withTransaction(this.deps.pool, async (client) => {
      const { rows } = await runStatement<SilenceRow>(client, Q.SILENCE_FOR_UPDATE, [existing.id]);
      const current = toView(rows[0]!);
      if (current.state === 'expired') {
        throw new ConflictError(`silence ${current.id} already expired at ${current.expiredAt}${current.expiredBy ? ` (by ${current.expiredBy})` : ' (its end passed)'}`);
      }
      const updated = await runStatement<SilenceRow>(client, Q.EXPIRE_SILENCE, [current.id, who.id]);
      const v = toView(updated.rows[0]!);
      await this.deps.timeline.appendAutomation(client, { kind: 'silence.expired', actor: who.id, data: { silenceId: v.id, matchers: v.matchers, reason: why } });
      return v;
    });
    this.deps.cache?.invalidate();
    return view;
  }
}
