/**
 * Contextual escaping, in the spirit of Go's html/template: a template knows
 * what kind of text it is (a URL, a PromQL query, a CEL condition, Slack
 * mrkdwn), follows its own literal text to know where each `${{ }}` lands,
 * and escapes the value for exactly that place. Alert content can then fill
 * in a path segment or a label value, but never add a path, a query
 * parameter, a PromQL operator or a Slack link.
 */

/** Where a template's text goes. Actions declare it per input field (see templateContextAt). */
export type TemplateContext = 'plain' | 'url' | 'promql' | 'cel' | 'mrkdwn';

export const TEMPLATE_CONTEXTS: readonly TemplateContext[] = ['plain', 'url', 'promql', 'cel', 'mrkdwn'];

/** A value cannot go where its template puts it; the message never quotes the value (it may be a secret). */
export class EscapeError extends Error {}

/**
 * Follows one template being rendered: `literal` for the author's text,
 * `value` for an interpolation (returns the escaped text to insert),
 * `unescaped` for an opted-out interpolation, `finish` for checks on the result.
 */
export interface Escaper {
  literal(text: string): void;
  value(value: unknown): string;
  unescaped(text: string): void;
  finish(rendered: string): void;
}

/** How a value becomes text: null renders empty (like GitHub Actions), objects as JSON. */
export function stringify(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// ---------- Slack mrkdwn ----------

/** Slack's control characters as entities: no links, mentions or broadcasts (`<!channel>`) from data. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Every string inside a value escaped for mrkdwn (a whole `${{ }}` that yields Block Kit). */
export function escapeMrkdwnDeep(value: unknown): unknown {
  if (typeof value === 'string') return escapeMrkdwn(value);
  if (Array.isArray(value)) return value.map(escapeMrkdwnDeep);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, escapeMrkdwnDeep(v)]));
  return value;
}

// Stateless, so one serves every plain template.
const PLAIN: Escaper = { literal() {}, value: stringify, unescaped() {}, finish() {} };

/**
 * In a link the playbook writes (`<${{ url }}|label>`), a value before the `|`
 * is the link's URL: its own `|` is encoded too, or it could supply the label.
 */
function mrkdwnEscaper(): Escaper {
  let sofar = '';
  const inLinkUrl = () => {
    const open = sofar.lastIndexOf('<');
    return open > sofar.lastIndexOf('>') && !sofar.slice(open).includes('|');
  };
  return {
    literal(text) {
      sofar += text;
    },
    value(v) {
      let out = escapeMrkdwn(stringify(v));
      if (inLinkUrl()) out = out.replace(/\|/g, '%7C');
      sofar += out;
      return out;
    },
    unescaped(text) {
      sofar += text;
    },
    finish() {},
  };
}

// ---------- URL ----------

type UrlPart = 'scheme' | 'authority' | 'path' | 'query' | 'fragment';

/** Which part of a URL the text so far ends in. */
function urlPart(sofar: string): UrlPart {
  if (sofar.includes('#')) return 'fragment';
  if (sofar.includes('?')) return 'query';
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/]*)(\/)?/i.exec(sofar);
  if (!m) return 'scheme';
  return m[2] ? 'path' : 'authority';
}

const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/**
 * Every interpolation is percent-encoded as one URL component
 * (encodeURIComponent): in the path it stays one segment (`/` and `?` are
 * encoded; a segment that comes out as `.` or `..` is refused, since URL
 * parsers resolve it), in the query it stays one key or value (`&`, `=`, `#`,
 * `+` encoded), in the host it stays a host. Nothing may come before the
 * scheme: the author writes where the request goes.
 */
function urlEscaper(): Escaper {
  let sofar = '';
  let inPath = false;
  return {
    literal(text) {
      sofar += text;
    },
    value(v) {
      const part = urlPart(sofar);
      if (part === 'scheme') throw new EscapeError('a ${{ }} cannot start a URL: write its scheme and host (https://host/...) in the playbook, or use unescaped() for a whole URL from a trusted value');
      if (part === 'path') inPath = true;
      const encoded = encodeURIComponent(stringify(v));
      sofar += encoded;
      return encoded;
    },
    unescaped(text) {
      sofar += text;
    },
    finish(rendered) {
      if (!inPath) return;
      const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(rendered);
      const segments = (m?.[1] ?? '').split('/');
      if (segments.some((s) => DOT_SEGMENT.test(s))) throw new EscapeError('a value would make a "." or ".." segment in the URL path (which moves the request to another path)');
    },
  };
}

// ---------- PromQL and CEL: string literals ----------

interface QuotedLanguage {
  name: string;
  quotes: string;
  /** Line comment opener outside strings. */
  comment: string;
  /** Quote characters that open a string with no escapes (PromQL's backtick). */
  raw: string;
  /** Whether a letter prefix before a quote makes a raw string (CEL r"..."). */
  rawPrefix: boolean;
  /** Whether triple quotes open a multi-line string (CEL). */
  triple: boolean;
}

const PROMQL: QuotedLanguage = { name: 'PromQL', quotes: `"'\``, comment: '#', raw: '`', rawPrefix: false, triple: false };
const CEL: QuotedLanguage = { name: 'CEL', quotes: `"'`, comment: '//', raw: '', rawPrefix: true, triple: true };

type LexState =
  | { kind: 'code' }
  | { kind: 'comment' }
  | { kind: 'string'; quote: string; escapable: boolean; regex: boolean; escape: boolean };

// RE2 metacharacters: a value inside a regex matcher string matches itself only.
const RE2_META = /[\\.+*?()|[\]{}^$]/g;

/** PromQL/CEL string escapes: backslash, the string's own quote, and control characters. */
function escapeQuoted(text: string, quote: string): string {
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out;
}

const NUMBER = /^[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?|0x[0-9a-f]+|inf|nan)$/i;
const DURATION = /^(?:\d+(?:ms|s|m|h|d|w|y))+$/;

/**
 * A value in a query or condition: inside a string literal it is escaped as
 * that string's content (and regex-quoted inside a PromQL `=~` / `!~`
 * matcher); outside string literals it must be a number (or, in PromQL, a
 * duration such as 5m), since any other text there is query syntax.
 */
function quotedEscaper(lang: QuotedLanguage): Escaper {
  let state: LexState = { kind: 'code' };
  let sofar = '';
  const advance = (text: string) => {
    for (let i = 0; i < text.length; i++) {
      const ch = text[i]!;
      const at = sofar.length;
      sofar += ch;
      switch (state.kind) {
        case 'comment':
          if (ch === '\n') state = { kind: 'code' };
          break;
        case 'string':
          if (state.escape) state.escape = false;
          else if (ch === '\\' && state.escapable) state.escape = true;
          else if (ch === state.quote[0] && sofar.endsWith(state.quote)) state = { kind: 'code' };
          break;
        case 'code': {
          if (sofar.endsWith(lang.comment)) {
            state = { kind: 'comment' };
            break;
          }
          if (!lang.quotes.includes(ch)) break;
          const before = sofar.slice(0, at);
          const rawPrefixed = lang.rawPrefix && /(?:^|[^A-Za-z0-9_])[bB]?[rR][bB]?$/.test(before);
          const triple = lang.triple && text.slice(i, i + 3) === ch.repeat(3);
          if (triple) {
            sofar += ch + ch;
            i += 2;
          }
          state = {
            kind: 'string',
            quote: triple ? ch.repeat(3) : ch,
            escapable: !lang.raw.includes(ch) && !rawPrefixed && !triple,
            regex: lang === PROMQL && /[=!]~\s*$/.test(before),
            escape: false,
          };
          break;
        }
      }
    }
  };
  return {
    literal: advance,
    value(v) {
      let out: string;
      if (state.kind === 'string') {
        if (!state.escapable) throw new EscapeError(`a \${{ }} cannot go inside a ${lang.name} raw or multi-line string (nothing can be escaped there); use a "..." string`);
        let text = stringify(v);
        if (state.regex) text = text.replace(RE2_META, '\\$&');
        out = escapeQuoted(text, state.quote);
      } else {
        out = typeof v === 'number' && Number.isFinite(v) ? String(v) : typeof v === 'string' && (NUMBER.test(v) || (lang === PROMQL && DURATION.test(v))) ? v : '';
        if (out === '') {
          throw new EscapeError(
            `a \${{ }} outside a ${lang.name} string literal must be a number${lang === PROMQL ? ' or a duration (5m)' : ''}, got ${v === null ? 'null' : typeof v}; put it inside quotes (label="\${{ ... }}"), or use unescaped() for trusted ${lang.name}`,
          );
        }
      }
      advance(out);
      return out;
    },
    unescaped: advance,
    finish() {},
  };
}

/** A fresh escaper for one rendering of one template. */
export function createEscaper(context: TemplateContext): Escaper {
  switch (context) {
    case 'plain':
      return PLAIN;
    case 'mrkdwn':
      return mrkdwnEscaper();
    case 'url':
      return urlEscaper();
    case 'promql':
      return quotedEscaper(PROMQL);
    case 'cel':
      return quotedEscaper(CEL);
  }
}
