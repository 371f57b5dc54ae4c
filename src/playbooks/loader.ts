/**
 * Reads a folder of playbook YAML files. Every problem is reported with the file and
 * line it comes from, so `firebreak validate` can print `file:line: message`.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { checkPlaybook, formatPath, type ActionCatalog, type PathIssue, type PathSegment } from './check.js';
import { issuesOfRefusedPlaybook } from './partial.js';
import { playbookSchema, type PlaybookSpec } from './schema.js';

export interface Problem {
  file: string;
  /** 1-based; 0 when the problem is not about one line (an unreadable folder). */
  line: number;
  message: string;
  /** A warning is printed but does not make the file invalid (e.g. an unescaped() interpolation). */
  severity?: 'warning';
}

export interface Playbook extends PlaybookSpec {
  /** Path of the file it was loaded from. */
  file: string;
  /** sha256 (hex) of the file's bytes: which version of the playbook a run used. */
  sourceHash: string;
  /** The file as parsed YAML, JSON-able, for snapshots and the API. */
  definition: Record<string, unknown>;
  /** The file's text (kept with its revision, for readers and diffs). */
  source: string;
}

export function formatProblem(p: Problem): string {
  const message = p.severity === 'warning' ? `warning: ${p.message}` : p.message;
  return p.line > 0 ? `${p.file}:${p.line}: ${message}` : `${p.file}: ${message}`;
}

/** Errors only (warnings do not make a playbook invalid). */
export function isError(p: Problem): boolean {
  return p.severity !== 'warning';
}

/** Line of the deepest node of `path` that exists; keys point at the key's own line. */
function lineOf(doc: Document, lc: LineCounter, path: readonly PathSegment[]): number {
  let node: unknown = doc.contents;
  let offset = doc.contents?.range?.[0] ?? 0;
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
      if (!pair) break;
      offset = (isScalar(pair.key) && pair.key.range?.[0]) || offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as { range?: [number, number, number] } | undefined;
      if (!item?.range) break;
      offset = item.range[0];
      node = item;
    } else break;
  }
  return lc.linePos(offset).line;
}

function valueAt(value: unknown, path: readonly PathSegment[]): unknown {
  let v = value;
  for (const p of path) v = typeof v === 'object' && v !== null ? (v as Record<PathSegment, unknown>)[p] : undefined;
  return v;
}

function schemaIssues(raw: unknown, issues: readonly z.core.$ZodIssue[]): PathIssue[] {
  return issues.flatMap((issue): PathIssue[] => {
    const path = issue.path.filter((p): p is PathSegment => typeof p !== 'symbol');
    if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => ({ path: [...path, k], message: `unknown field "${k}"` }));
    const missing = issue.code === 'invalid_type' && valueAt(raw, path) === undefined;
    return [{ path, message: missing ? 'is required' : issue.message }];
  });
}

// prettyErrors off: messages stay on one line for `file:line: message`.
function parseYaml(text: string): { doc: Document; lc: LineCounter; restore: (v: unknown) => unknown } {
  const lc = new LineCounter();
  return { doc: parseDocument(text, { lineCounter: lc, prettyErrors: false }), lc, restore: (v) => v };
}

const SHIELD = '__fb_expr_';

/**
 * `${{ x }}` inside a YAML flow collection (`with: { url: https://h/${{ x }}/y }`, as in
 * the product docs) is not valid YAML: `{` and `}` are flow indicators there. When a file
 * fails to parse, try again with each one-line `${{ ... }}` swapped for a plain token and
 * put the text back in the parsed values. Only used as a fallback, so files that are valid
 * YAML keep YAML's own reading (escapes in quoted strings included).
 */
function parseShielded(text: string): ReturnType<typeof parseYaml> | undefined {
  if (text.includes(SHIELD)) return undefined;
  const saved: string[] = [];
  const shielded = text.replace(/\$\{\{[^\n]*?\}\}/g, (m) => `${SHIELD}${saved.push(m) - 1}__`);
  if (saved.length === 0) return undefined;
  const parsed = parseYaml(shielded);
  if (parsed.doc.errors.length > 0) return undefined;
  const unshield = (s: string) => s.replace(/__fb_expr_(\d+)__/g, (_, i: string) => saved[Number(i)]!);
  const restore = (v: unknown): unknown => {
    if (typeof v === 'string') return unshield(v);
    if (Array.isArray(v)) return v.map(restore);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [unshield(k), restore(x)]));
    return v;
  };
  return { ...parsed, restore };
}

type Parsed = { playbook?: Playbook; problems: Problem[]; warnings?: Problem[]; locate?: (path: PathSegment[]) => number };

/** Parse and check one file's text; `playbook` is set only when there is no problem (warnings aside). */
export function parsePlaybookSource(file: string, source: string | Buffer, actions: ActionCatalog): { playbook?: Playbook; problems: Problem[]; warnings: Problem[] } {
  const { playbook, problems, warnings = [] } = parseSource(file, source, actions);
  return playbook ? { playbook, problems, warnings } : { problems, warnings };
}

function parseSource(file: string, source: string | Buffer, actions: ActionCatalog): Parsed {
  const bytes = typeof source === 'string' ? Buffer.from(source) : source;
  const text = bytes.toString('utf8');
  let { doc, lc, restore } = parseYaml(text);
  if (doc.errors.length > 0) {
    const shielded = parseShielded(text);
    if (shielded) ({ doc, lc, restore } = shielded);
  }
  if (doc.errors.length > 0) {
    // Errors found at end of input (an unclosed quote or bracket) would point past the
    // last line; the last line with content is where the author should look.
    const last = lc.linePos(Math.max(0, text.trimEnd().length - 1)).line;
    return { problems: doc.errors.map((e) => ({ file, line: Math.min(lc.linePos(e.pos[0]).line, last), message: `YAML: ${e.message}` })) };
  }
  const at = (i: PathIssue): Problem => ({
    file,
    line: lineOf(doc, lc, i.path),
    message: i.path.length ? `${formatPath(i.path)}: ${i.message}` : i.message,
    ...(i.severity && { severity: i.severity }),
  });
  let raw: unknown;
  try {
    raw = restore(doc.toJS({ maxAliasCount: 100 }));
  } catch (e) {
    return { problems: [{ file, line: 1, message: `YAML: ${(e as Error).message}` }] };
  }
  if (raw === null || raw === undefined) return { problems: [{ file, line: 1, message: 'the file is empty: expected a playbook (name, triggers, steps)' }] };
  const parsed = playbookSchema.safeParse(raw);
  // Sorted by line (stable), so the report reads top to bottom like the file.
  const byLine = (ps: Problem[]) => ps.sort((a, b) => a.line - b.line);
  // A refused playbook is still checked as far as it can be read: every problem in one pass.
  if (!parsed.success) {
    const found = issuesOfRefusedPlaybook(raw, schemaIssues(raw, parsed.error.issues), actions).map(at);
    return { problems: byLine(found.filter(isError)), warnings: byLine(found.filter((p) => !isError(p))) };
  }
  const checked = checkPlaybook(parsed.data, actions).map(at);
  const problems = byLine(checked.filter(isError));
  const warnings = byLine(checked.filter((p) => !isError(p)));
  if (problems.length > 0) return { problems, warnings };
  return {
    problems,
    warnings,
    locate: (path) => lineOf(doc, lc, path),
    playbook: {
      ...parsed.data,
      file,
      sourceHash: createHash('sha256').update(bytes).digest('hex'),
      definition: raw as Record<string, unknown>,
      source: text,
    },
  };
}

/** Every *.yaml / *.yml directly in `dir` (subfolders such as scripts/ are not playbooks). */
export async function loadPlaybooks(dir: string, opts: { actions: ActionCatalog }): Promise<{ playbooks: Playbook[]; problems: Problem[]; warnings: Problem[] }> {
  let names: string[];
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    names = entries.filter((e) => e.isFile() && /\.ya?ml$/i.test(e.name)).map((e) => e.name).sort();
  } catch (e) {
    return { playbooks: [], problems: [{ file: dir, line: 0, message: `cannot read the playbooks folder: ${(e as Error).message}` }], warnings: [] };
  }
  const playbooks: Playbook[] = [];
  const problems: Problem[] = [];
  const warnings: Problem[] = [];
  const byName = new Map<string, Playbook>();
  for (const name of names) {
    const file = join(dir, name);
    const res = parseSource(file, await readFile(file), opts.actions);
    problems.push(...res.problems);
    warnings.push(...(res.warnings ?? []));
    if (!res.playbook) continue;
    const other = byName.get(res.playbook.name);
    if (other) {
      // Files are read in name order, so the first file keeps the name and later ones are refused.
      problems.push({ file, line: res.locate?.(['name']) ?? 1, message: `name: duplicate playbook name "${res.playbook.name}" (already used by ${other.file})` });
      continue;
    }
    byName.set(res.playbook.name, res.playbook);
    playbooks.push(res.playbook);
  }
  return { playbooks, problems, warnings };
}

/** Every error and warning, file by file, top to bottom (`isError` tells them apart). */
export async function validatePlaybooks(dir: string, actions: ActionCatalog): Promise<Problem[]> {
  const { problems, warnings } = await loadPlaybooks(dir, { actions });
  const order = (p: Problem) => p.file;
  return [...problems, ...warnings].sort((a, b) => order(a).localeCompare(order(b)) || a.line - b.line);
}
