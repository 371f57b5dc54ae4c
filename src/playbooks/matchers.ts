import { RE2JS } from '@bufbuild/re2';
import type { Alert } from '../ingest/types.js';

export type MatchOp = '=' | '!=' | '=~' | '!~';

/** One Alertmanager matcher, e.g. `severity=~"critical|page"`. */
export interface Matcher {
  name: string;
  op: MatchOp;
  value: string;
  /** Compiled, fully anchored RE2 pattern for `=~` / `!~`. */
  regex?: RE2JS;
}

const MATCHER = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/s;

/** Undo the escapes Alertmanager documents for quoted values; others (`\.`, `\d`) stay for the regex. */
function unquote(raw: string): string {
  return raw.slice(1, -1).replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Parse Alertmanager matcher syntax; throws an Error whose message says what is wrong. */
export function parseMatcher(text: string): Matcher {
  const m = MATCHER.exec(text);
  if (!m) throw new Error(`bad matcher ${JSON.stringify(text)}: expected name="value", name!="value", name=~"regex" or name!~"regex"`);
  const [, name, op, raw] = m as unknown as [string, string, MatchOp, string];
  let value = raw;
  if (raw.startsWith('"')) {
    if (!/^"(?:[^"\\]|\\.)*"$/s.test(raw)) {
      throw new Error(`bad matcher ${JSON.stringify(text)}: bad quoting in value (one double-quoted string, escape \\" inside)`);
    }
    value = unquote(raw);
  } else if (/^[=~]/.test(raw)) {
    // `a==b` is a PromQL/CEL habit; Alertmanager's own parser refuses it too.
    throw new Error(`bad matcher ${JSON.stringify(text)}: use a single operator (=, !=, =~, !~)`);
  } else if (raw.includes('"')) {
    throw new Error(`bad matcher ${JSON.stringify(text)}: quote the whole value, e.g. ${name}${op}"..."`);
  }
  if (op === '=~' || op === '!~') {
    let regex: RE2JS;
    try {
      // RE2, as in Alertmanager (Go's regexp): linear time whatever the label value, and the
      // same syntax (no lookaround or backreferences). Anchored at both ends like Alertmanager:
      // `severity=~"crit"` does not match "critical". The bare pattern is compiled first so an
      // error quotes what the author wrote.
      RE2JS.compile(value);
      regex = RE2JS.compile(`^(?:${value})$`);
    } catch (e) {
      throw new Error(`bad matcher ${JSON.stringify(text)}: invalid regex (RE2 syntax, as in Alertmanager): ${(e as Error).message}`);
    }
    const m: Matcher = { name, op, value };
    // Not enumerable: a playbook's model stays clean when serialised (a compiled regex would show as {}).
    Object.defineProperty(m, 'regex', { value: regex, enumerable: false });
    return m;
  }
  return { name, op, value };
}

/** A missing label is the empty string, as in Alertmanager (`team=""` matches alerts without `team`). */
export function matcherHolds(m: Matcher, labels: Readonly<Record<string, string>>): boolean {
  const v = labels[m.name] ?? '';
  switch (m.op) {
    case '=':
      return v === m.value;
    case '!=':
      return v !== m.value;
    case '=~':
      return m.regex!.test(v);
    case '!~':
      return !m.regex!.test(v);
  }
}

export function matchersHold(ms: readonly Matcher[], alert: Pick<Alert, 'labels'>): boolean {
  return ms.every((m) => matcherHolds(m, alert.labels));
}
