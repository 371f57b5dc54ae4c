/**
 * Server-side console sessions. The cookie carries 256 random bits; the
 * database keeps their SHA-256, who the session is, and when it ends (by the
 * database clock). Logout ends a session; revoking a token ends every
 * session opened with it; changing FIREBREAK_API_TOKEN ends the service's.
 */
import { randomBytes } from 'node:crypto';
import { isLocalMode, type Config } from '../config/index.js';
import type { Pool, Queryable } from '../store/index.js';
import { identity, type Identity } from './identity.js';
import { digestsEqual, sha256Hex } from './tokens.js';
import * as Q from './queries.js';

export const SESSION_COOKIE = 'firebreak_session';
/** How long a console session lasts. */
export const SESSION_TTL_SECONDS = 12 * 60 * 60;

const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

/** Open a session for `who`; returns the cookie value (the only copy of the id). */
export async function createSession(db: Queryable, who: Identity, options: { credentialHash?: string; ttlSeconds?: number } = {}): Promise<{ cookie: string; expiresAt: Date }> {
  const id = randomBytes(32).toString('base64url');
  const { rows } = await db.query<{ expires_at: Date }>(Q.INSERT_SESSION, [
    sha256Hex(id),
    who.id,
    who.name,
    who.method,
    who.verified,
    who.groups,
    who.tokenId ?? null,
    options.credentialHash ?? null,
    options.ttlSeconds ?? SESSION_TTL_SECONDS,
  ]);
  return { cookie: id, expiresAt: rows[0]!.expires_at };
}

interface SessionRow {
  actor: string;
  user_name: string;
  method: 'token' | 'oidc' | 'service' | 'local';
  verified: boolean;
  groups: string[];
  token_id: string | null;
  credential_hash: string | null;
}

/** What a stored session must still agree with in the current configuration. */
export interface SessionValidity {
  /** SHA-256 of the current FIREBREAK_API_TOKEN (undefined when unset): a service session opened with another token is over. */
  serviceTokenHash: string | undefined;
  /** Local mode now: a session holding an unverified local name is valid only then, not after authentication was set up. */
  localMode: boolean;
}

export function sessionValidity(config: Pick<Config, 'apiToken' | 'oidc'>): SessionValidity {
  return { serviceTokenHash: config.apiToken ? sha256Hex(config.apiToken) : undefined, localMode: isLocalMode(config) };
}

/** The identity of a live session, or undefined. */
export async function readSession(db: Queryable, cookie: string, validity: SessionValidity): Promise<Identity | undefined> {
  if (!SESSION_ID.test(cookie)) return undefined;
  const { rows } = await db.query<SessionRow>(Q.LIVE_SESSION, [sha256Hex(cookie)]);
  const row = rows[0];
  if (!row) return undefined;
  const { serviceTokenHash, localMode } = validity;
  if (row.method === 'service' && !(serviceTokenHash && row.credential_hash && digestsEqual(row.credential_hash, serviceTokenHash))) return undefined;
  if (row.method === 'local' && !localMode) return undefined;
  return identity(row.method, row.user_name, { groups: row.groups, verified: row.verified, sessionId: sha256Hex(cookie), ...(row.token_id && { tokenId: row.token_id }) });
}

/** End a session (logout). Returns the actor it belonged to, if it was live. */
export async function endSession(db: Queryable, cookie: string, by: string): Promise<string | undefined> {
  if (!SESSION_ID.test(cookie)) return undefined;
  const { rows } = await db.query<{ actor: string }>(Q.END_SESSION, [sha256Hex(cookie), by]);
  return rows[0]?.actor;
}

/** Delete long-dead sessions and pending logins (any replica may run it). */
export async function pruneSessions(pool: Pool): Promise<void> {
  await pool.query(Q.PRUNE_SESSIONS);
  await pool.query(Q.PRUNE_OIDC_LOGINS);
}
