/**
 * `/firebreak silence <matcher>... for <duration> <reason...>`,
 * `/firebreak silence list`, `/firebreak silence expire <id> [reason...]`:
 * the same acts as `POST /api/silences` and `DELETE /api/silences/:id`
 * (src/rails), as the Slack user who typed them.
 */
import type { Identity } from '../access/index.js';
import { NotFoundError, ValidationError } from '../errors.js';
import { splitOutsideQuotes, type Silences, type SilenceView } from '../rails/index.js';

export const SILENCE_USAGE = 'usage: `/firebreak silence <matcher>... for <duration> <reason>`, e.g. `/firebreak silence service="checkout" env=~"prod|stage" for 2h deploy of v42`; `/firebreak silence list`; `/firebreak silence expire <id> [reason]`';

export interface SilenceCommand {
  matchers: string[];
  duration: string;
  reason: string;
}

/** Slack's text as typed: its HTML entities undone, “smart” quotes made plain. */
function plain(text: string): string {
  return text
    .replace(/[“”„]/g, '"')
    .replace(/[‘’]/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** Words, where a double-quoted part or a `{...}` selector keeps its spaces (and its quotes). */
const words = (text: string): string[] => splitOutsideQuotes(text, (c) => /\s/.test(c), { braces: true });

/** `<matcher>... for <duration> <reason words>`: the matchers stay Alertmanager text for the shared parser. */
export function parseSilenceCommand(text: string): SilenceCommand {
  const all = words(plain(text));
  const at = all.findIndex((w) => w.toLowerCase() === 'for');
  if (at < 0) throw new ValidationError(`say for how long. ${SILENCE_USAGE}`, [{ path: 'for', message: 'required' }]);
  const matchers = all.slice(0, at);
  const duration = all[at + 1];
  const reason = all.slice(at + 2).join(' ').trim();
  if (matchers.length === 0) throw new ValidationError(`give at least one matcher before "for". ${SILENCE_USAGE}`, [{ path: 'matchers', message: 'required' }]);
  if (!duration) throw new ValidationError(`give a duration after "for" (30m, 2h, 1d). ${SILENCE_USAGE}`, [{ path: 'for', message: 'required' }]);
  if (!reason) throw new ValidationError(`say why after the duration: the reason is shown with every alert it suppresses. ${SILENCE_USAGE}`, [{ path: 'reason', message: 'required' }]);
  return { matchers, duration, reason };
}

function until(iso: string): string {
  return `${iso.slice(0, 16).replace('T', ' ')}Z`;
}

function describe(s: SilenceView, escape: (t: string) => string): string {
  const when = s.state === 'pending' ? `starts ${until(s.startsAt)}, ends ${until(s.endsAt)}` : s.state === 'active' ? `until ${until(s.endsAt)}` : `expired ${s.expiredAt ? until(s.expiredAt) : ''}`;
  return `• \`${s.id.slice(0, 8)}\` \`${escape(s.matchers.join(', '))}\` *${s.state}*, ${when} — ${escape(s.reason)} (by ${escape(s.createdBy)})`;
}

/** A silence by its id or a unique prefix of it (8+ characters), as people paste them. */
async function resolveSilence(silences: Silences, text: string | undefined): Promise<string> {
  const id = (text ?? '').trim().toLowerCase();
  if (!id) throw new ValidationError(`which silence? ${SILENCE_USAGE}`, [{ path: 'silence', message: 'required' }]);
  if (id.length === 36) return id;
  if (!/^[0-9a-f-]{8,35}$/.test(id)) throw new NotFoundError(`no silence ${id}`);
  const found = (await silences.list({ state: 'current' })).filter((s) => s.id.startsWith(id));
  if (found.length === 0) throw new NotFoundError(`no active or pending silence ${id} (give the whole id of an expired one)`);
  if (found.length > 1) throw new ValidationError(`${id} matches more than one silence; give more of the id`, [{ path: 'silence', message: 'ambiguous' }]);
  return found[0]!.id;
}

/** The answer text for `/firebreak silence ...` (rest = the text after the word `silence`). */
export async function silenceCommand(silences: Silences | undefined, user: Identity, rest: string, escape: (t: string) => string): Promise<string> {
  if (!silences) return 'Silences are not available on this server.';
  const trimmed = rest.trim();
  const [first, ...others] = trimmed.split(/\s+/);
  switch ((first ?? '').toLowerCase()) {
    case '':
    case 'help':
      return SILENCE_USAGE;
    case 'list': {
      const items = await silences.list({ state: 'current' });
      if (items.length === 0) return 'No active or pending silences.';
      return `*Silences* (active and pending)\n${items.map((s) => describe(s, escape)).join('\n')}`;
    }
    case 'expire': {
      const id = await resolveSilence(silences, others[0]);
      const reason = others.slice(1).join(' ').trim();
      const s = await silences.expire(user, id, reason || undefined);
      return `🔔 Silence \`${s.id}\` (\`${escape(s.matchers.join(', '))}\`) expired: matching alerts start runs again.`;
    }
    default: {
      const cmd = parseSilenceCommand(trimmed);
      const s = await silences.create(user, { matchers: cmd.matchers, duration: cmd.duration, reason: cmd.reason });
      return `🔕 Silence \`${s.id}\` created: alerts matching \`${escape(s.matchers.join(', '))}\` are recorded as suppressed ${s.state === 'pending' ? `from ${until(s.startsAt)} ` : ''}until ${until(s.endsAt)}. Undo with \`/firebreak silence expire ${s.id.slice(0, 8)}\`.`;
    }
  }
}
