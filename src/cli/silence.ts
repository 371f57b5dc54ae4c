/**
 * `firebreak silence add <matcher>... --for 2h --reason "..."`,
 * `firebreak silence list [--all] [--expired] [--json]`,
 * `firebreak silence expire <id> [--reason ...]`: through the server's API
 * (`/api/silences`) as the identity of FIREBREAK_TOKEN, like approvals.
 */
import { parseArgs } from 'node:util';

interface ApiResponse {
  status: number;
  body: unknown;
  text: string;
}

export interface SilenceCliDeps {
  api: (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, as?: string) => Promise<ApiResponse>;
  expectOk: (res: ApiResponse, what: string) => unknown;
  fail: (message: string, exitCode?: number) => Error;
  out: (text: string) => void;
}

interface SilenceJson {
  id: string;
  matchers: string[];
  startsAt: string;
  endsAt: string;
  reason: string;
  createdBy: string;
  state: string;
  expiredAt: string | null;
  expiredBy: string | null;
}

const USAGE = 'usage: firebreak silence add <matcher>... --for <duration> --reason <text> | firebreak silence list [--all | --expired] [--json] | firebreak silence expire <id> [--reason text]';

const utc = (iso: string | null) => (iso ? `${iso.slice(0, 19).replace('T', ' ')}Z` : '—');

export async function silenceCommand(args: string[], deps: SilenceCliDeps): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add': {
      const { positionals, values } = parseArgs({ args: rest, allowPositionals: true, options: { for: { type: 'string' }, 'ends-at': { type: 'string' }, 'starts-at': { type: 'string' }, reason: { type: 'string' }, as: { type: 'string' }, json: { type: 'boolean' } } });
      if (positionals.length === 0) throw deps.fail(`give at least one matcher, e.g. 'service="checkout"'\n${USAGE}`, 2);
      const body = {
        matchers: positionals,
        ...(values.for !== undefined && { for: values.for }),
        ...(values['ends-at'] !== undefined && { endsAt: values['ends-at'] }),
        ...(values['starts-at'] !== undefined && { startsAt: values['starts-at'] }),
        ...(values.reason !== undefined && { reason: values.reason }),
      };
      const s = deps.expectOk(await deps.api('POST', '/api/silences', body, values.as), 'silence add') as SilenceJson;
      if (values.json) deps.out(JSON.stringify(s, null, 2));
      else deps.out(s.id);
      return 0;
    }
    case 'list':
    case 'ls': {
      const { values } = parseArgs({ args: rest, options: { all: { type: 'boolean' }, expired: { type: 'boolean' }, json: { type: 'boolean' } } });
      const state = values.all ? 'all' : values.expired ? 'expired' : 'current';
      const { items } = deps.expectOk(await deps.api('GET', `/api/silences?state=${state}`), 'silence list') as { items: SilenceJson[] };
      if (values.json) {
        deps.out(JSON.stringify(items, null, 2));
        return 0;
      }
      if (items.length === 0) {
        deps.out(state === 'current' ? 'no active or pending silences' : 'no silences');
        return 0;
      }
      deps.out(['ID', 'STATE', 'MATCHERS', 'STARTS', 'ENDS', 'CREATED BY', 'REASON'].join('\t'));
      for (const s of items) {
        const ends = s.state === 'expired' ? `${utc(s.expiredAt)}${s.expiredBy ? ` (by ${s.expiredBy})` : ''}` : utc(s.endsAt);
        deps.out([s.id, s.state, s.matchers.join(','), utc(s.startsAt), ends, s.createdBy, s.reason].join('\t'));
      }
      return 0;
    }
    case 'expire': {
      const { positionals, values } = parseArgs({ args: rest, allowPositionals: true, options: { reason: { type: 'string' }, as: { type: 'string' } } });
      const id = positionals[0];
      if (!id) throw deps.fail(USAGE, 2);
      const s = deps.expectOk(await deps.api('DELETE', `/api/silences/${encodeURIComponent(id)}`, values.reason !== undefined ? { reason: values.reason } : {}, values.as), 'silence expire') as SilenceJson;
      deps.out(`expired: silence ${s.id} (${s.matchers.join(', ')}) by ${s.expiredBy}`);
      return 0;
    }
    default:
      throw deps.fail(USAGE, 2);
  }
}
