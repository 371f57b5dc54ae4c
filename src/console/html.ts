/**
 * HTML with escaping by default: every interpolated value is escaped unless it
 * is itself the output of `html` (or `raw`, used only for trusted constants).
 */

export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

function renderValue(value: unknown): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(renderValue).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

/** Tagged template: `html\`<p>${userText}</p>\`` escapes userText. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += renderValue(values[i]) + strings[i + 1]!;
  return new SafeHtml(out);
}

/** Trusted markup (constants in this folder only; never data). */
export function raw(markup: string): SafeHtml {
  return new SafeHtml(markup);
}

/**
 * Text with a line-break opportunity after each `_` (escaped as usual), so a
 * long step id like `gather_deployment_history` wraps at its words in a narrow
 * column instead of widening it or breaking mid-word.
 */
export function breakable(text: string): SafeHtml {
  return new SafeHtml(text.split('_').map(escapeHtml).join('_<wbr>'));
}

/** "3 min ago" / "in 2 h": the relative hint next to a UTC time (the browser keeps it current). */
export function relativeTime(iso: string, now: number): string {
  const s = Math.round((now - Date.parse(iso)) / 1000);
  const a = Math.abs(s);
  if (!Number.isFinite(a)) return '';
  if (a < 5) return 'just now';
  const text = a < 60 ? `${a} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 172_800 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86_400)} d`;
  return s >= 0 ? `${text} ago` : `in ${text}`;
}
