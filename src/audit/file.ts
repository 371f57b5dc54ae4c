/**
 * Checkpoints kept outside the database, read back for `audit verify
 * --checkpoints <file>`: what GET /api/audit/checkpoints answers
 * (`{ "items": [...] }`), a JSON array of checkpoints, or log lines (JSON per
 * line, each an `audit checkpoint` log record or a bare checkpoint). Other
 * log lines in the file are skipped, so a shipped log can be fed as is.
 */
import { z } from 'zod';
import { ValidationError, type FieldProblem } from '../errors.js';
import type { Checkpoint } from './checkpoints.js';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits');

const checkpointSchema = z.object({
  seq: z.number().int().min(1),
  time: z.string().min(1),
  prevSignature: hex64,
  heads: z.array(z.object({ chain: z.string().min(1), seq: z.number().int().min(1), hash: hex64 })),
  legacyDigest: hex64,
  keyId: z.string(),
  signature: hex64,
});

function looksLikeCheckpoint(value: unknown): boolean {
  return typeof value === 'object' && value !== null && 'signature' in value && 'heads' in value;
}

function candidates(text: string): Array<{ where: string; value: unknown }> {
  const trimmed = text.trim();
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
    try {
      const doc = JSON.parse(trimmed) as unknown;
      const list = Array.isArray(doc) ? doc : Array.isArray((doc as { items?: unknown }).items) ? (doc as { items: unknown[] }).items : [doc];
      return list.map((value, i) => ({ where: `entry ${i + 1}`, value: (value as { checkpoint?: unknown })?.checkpoint ?? value }));
    } catch {
      // not one JSON document: read it as JSON lines
    }
  }
  const found: Array<{ where: string; value: unknown }> = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return; // a non-JSON log line
    }
    const inner = (value as { checkpoint?: unknown } | null)?.checkpoint ?? value;
    if (looksLikeCheckpoint(inner)) found.push({ where: `line ${i + 1}`, value: inner });
  });
  return found;
}

/** Parse an exported checkpoint file; a malformed entry is an error naming where it is. */
export function parseCheckpointFile(text: string, source: string): Checkpoint[] {
  const problems: FieldProblem[] = [];
  const checkpoints: Checkpoint[] = [];
  for (const { where, value } of candidates(text)) {
    const parsed = checkpointSchema.safeParse(value);
    if (parsed.success) checkpoints.push(parsed.data);
    else for (const issue of parsed.error.issues) problems.push({ path: `${source}: ${where}${issue.path.length ? ` ${issue.path.join('.')}` : ''}`, message: issue.message });
  }
  if (problems.length > 0) throw new ValidationError(`${source} holds malformed checkpoints`, problems);
  if (checkpoints.length === 0) throw new ValidationError(`${source} holds no checkpoints`, [{ path: source, message: 'expected GET /api/audit/checkpoints output, a JSON array of checkpoints, or "audit checkpoint" log lines' }]);
  return checkpoints;
}
