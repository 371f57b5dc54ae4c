/**
 * Personal API tokens: `fbt_<id>_<secret>`. The id is public (listed,
 * revoked by), the whole token is stored only as its SHA-256. A presented
 * token is looked up by its id and compared by hash in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { NotFoundError, ValidationError } from '../errors.js';
import { parseDuration } from '../playbooks/index.js';
import { withTransaction, type Pool, type Queryable } from '../store/index.js';
import { identity, isValidName, type Identity } from './identity.js';
import * as Q from './queries.js';

const TOKEN_FORMAT = /^fbt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export const sha256Hex = (value: string): string => createHash('sha256').update(value).digest('hex');

/** Compare two hex digests without leaking where they differ. */
export function digestsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** The public id inside a presented token, if it looks like one of ours. */
export function tokenIdOf(presented: string): string | undefined {
  return TOKEN_FORMAT.exec(presented)?.[1];
}

export function looksLikePersonalToken(presented: string): boolean {
  return TOKEN_FORMAT.test(presented);
}

export interface TokenRecord {
  id: string;
  user: string;
  groups: string[];
  description: string | null;
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
  lastUsedAt: string | null;
  /** active, expired or revoked */
  state: 'active' | 'expired' | 'revoked';
}

interface TokenRow {
  id: string;
  user_name: string;
  groups: string[];
  description: string | null;
  created_at: Date;
  created_by: string;
  expires_at: Date | null;
  revoked_at: Date | null;
  revoked_by: string | null;
  last_used_at: Date | null;
  expired?: boolean;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

function toRecord(row: TokenRow): TokenRecord {
  return {
    id: row.id,
    user: row.user_name,
    groups: row.groups,
    description: row.description,
    createdAt: row.created_at.toISOString(),
    createdBy: row.created_by,
    expiresAt: iso(row.expires_at),
    revokedAt: iso(row.revoked_at),
    revokedBy: row.revoked_by,
    lastUsedAt: iso(row.last_used_at),
    state: row.revoked_at ? 'revoked' : row.expired ? 'expired' : 'active',
  };
}

export interface NewToken {
  user: string;
  groups?: readonly string[];
  /** Lifetime in seconds; undefined = never expires. */
  ttlSeconds?: number;
  description?: string;
  createdBy: string;
}

const GROUP = /^[A-Za-z0-9._-]{1,64}$/;

/** A token's `--ttl` in seconds: "30d", "12h", "90m"; undefined (never expires) when not given. */
export function parseTtl(ttl: string | undefined): number | undefined {
  if (ttl === undefined || ttl === '') return undefined;
  const ms = parseDuration(ttl);
  if (ms === undefined) throw new ValidationError(`ttl "${ttl}" is not a duration (e.g. 30d, 12h, 90m)`, [{ path: 'ttl', message: 'expected a duration such as 30d' }]);
  return Math.round(ms / 1000);
}

/** Check a token request; throws a ValidationError naming the field. */
export function checkNewToken(input: NewToken): void {
  if (!isValidName(input.user)) throw new ValidationError('user must be a name of 1-64 letters, digits and . _ @ + -', [{ path: 'user', message: 'invalid name' }]);
  for (const g of input.groups ?? []) {
    if (!GROUP.test(g)) throw new ValidationError(`group "${g}" must be 1-64 letters, digits and . _ -`, [{ path: 'groups', message: `invalid group ${g}` }]);
  }
  if (input.ttlSeconds !== undefined && (!Number.isInteger(input.ttlSeconds) || input.ttlSeconds < 1 || input.ttlSeconds > 10 * 366 * 86_400)) {
    throw new ValidationError('ttl must be between 1 second and 10 years', [{ path: 'ttl', message: 'out of range' }]);
  }
  if (input.description !== undefined && input.description.length > 200) throw new ValidationError('description is at most 200 characters', [{ path: 'description', message: 'too long' }]);
}

/** Create a token. The returned `token` is the only time it exists in clear. */
export async function createToken(db: Queryable, input: NewToken): Promise<{ token: string; record: TokenRecord }> {
  checkNewToken(input);
  const id = randomBytes(8).toString('hex');
  const token = `fbt_${id}_${randomBytes(32).toString('base64url')}`;
  const groups = [...new Set(input.groups ?? [])].sort();
  const { rows } = await db.query<TokenRow>(Q.INSERT_TOKEN, [id, input.user, groups, sha256Hex(token), input.description ?? null, input.createdBy, input.ttlSeconds ?? null]);
  return { token, record: toRecord(rows[0]!) };
}

export async function listTokens(db: Queryable, options: { includeInactive?: boolean; user?: string } = {}): Promise<TokenRecord[]> {
  const { rows } = await db.query<TokenRow>(Q.LIST_TOKENS, [options.includeInactive ?? false, options.user ?? null]);
  return rows.map(toRecord);
}

/** A token by its id (or by the token itself, whose id it carries). */
export async function getToken(db: Queryable, idOrToken: string): Promise<TokenRecord> {
  const id = tokenIdOf(idOrToken) ?? idOrToken;
  if (!/^[0-9a-f]{16}$/.test(id)) throw new NotFoundError(`token ${id.slice(0, 40)} not found`);
  const { rows } = await db.query<TokenRow>(Q.TOKEN_BY_ID, [id]);
  if (!rows[0]) throw new NotFoundError(`token ${id} not found`);
  return toRecord(rows[0]);
}

/** Revoke a token and end every console session opened with it, in one transaction. */
export async function revokeToken(pool: Pool, id: string, by: string): Promise<{ record: TokenRecord; sessionsEnded: number }> {
  const existing = await getToken(pool, id);
  return withTransaction(pool, async (client) => {
    const { rows } = await client.query<TokenRow>(Q.REVOKE_TOKEN, [id, by]);
    const ended = await client.query(Q.END_TOKEN_SESSIONS, [id, `revoked by ${by}`]);
    const record = rows[0] ? toRecord(rows[0]) : existing;
    return { record, sessionsEnded: ended.rowCount ?? 0 };
  });
}

/** The identity of a presented personal token, or undefined when it is unknown, revoked, expired or wrong. */
export async function verifyToken(db: Queryable, presented: string): Promise<Identity | undefined> {
  const id = tokenIdOf(presented);
  if (!id) return undefined;
  const { rows } = await db.query<{ id: string; user_name: string; groups: string[]; token_hash: string }>(Q.ACTIVE_TOKEN, [id]);
  const row = rows[0];
  if (!row || !digestsEqual(sha256Hex(presented), row.token_hash)) return undefined;
  await db.query(Q.TOUCH_TOKEN, [id]);
  return identity('token', row.user_name, { groups: row.groups, tokenId: row.id });
}

/**
 * Why a presented token that verifyToken refused is not a guess: it is the
 * real token, revoked or expired (its holder gets told, and it is not
 * counted as a guess: a forgotten script must not lock out its neighbours).
 * Undefined when it is unknown or its secret is wrong.
 */
export async function staleTokenReason(db: Queryable, presented: string): Promise<'revoked' | 'expired' | undefined> {
  const id = tokenIdOf(presented);
  if (!id) return undefined;
  const { rows } = await db.query<{ token_hash: string; revoked: boolean; expired: boolean }>(Q.TOKEN_STATE, [id]);
  const row = rows[0];
  if (!row || !digestsEqual(sha256Hex(presented), row.token_hash)) return undefined;
  return row.revoked ? 'revoked' : row.expired ? 'expired' : undefined;
}
