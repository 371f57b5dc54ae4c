/**
 * Console login throttling, in Postgres so every replica counts the same
 * failures. A client address that failed CLIENT_LIMIT times, or a user whose
 * credential failed USER_LIMIT times, within the window is answered 429 with
 * Retry-After until the window (started by its first failure) ends, even
 * with the right credential: otherwise guessing just continues.
 */
import type { Queryable } from '../store/index.js';
import * as Q from './queries.js';

export const LOGIN_WINDOW_SECONDS = 15 * 60;
export const CLIENT_LIMIT = 10;
export const USER_LIMIT = 5;

export interface LoginKeys {
  client: string;
  /** The user a credential claims (a personal token's owner, `service`), when known. */
  user?: string;
}

function keys(k: LoginKeys): { scopes: string[]; values: string[]; limits: number[] } {
  const scopes = ['client'];
  const values = [k.client];
  const limits = [CLIENT_LIMIT];
  if (k.user) {
    scopes.push('user');
    values.push(k.user);
    limits.push(USER_LIMIT);
  }
  return { scopes, values, limits };
}

/** Seconds to wait before trying again, or 0 when a login may be tried now. */
export async function loginRetryAfter(db: Queryable, k: LoginKeys): Promise<number> {
  const { scopes, values, limits } = keys(k);
  const { rows } = await db.query<{ retry_after: number }>(Q.LOGIN_BLOCKED, [scopes, values, limits, LOGIN_WINDOW_SECONDS]);
  return Math.max(0, rows[0]?.retry_after ?? 0);
}

export async function recordLoginFailure(db: Queryable, k: LoginKeys): Promise<void> {
  const { scopes, values } = keys(k);
  await db.query(Q.RECORD_LOGIN_FAILURE, [scopes, values, LOGIN_WINDOW_SECONDS]);
}

/** A successful login clears its client's count (not the user's: a guesser elsewhere keeps theirs). */
export async function clearLoginFailures(db: Queryable, k: LoginKeys): Promise<void> {
  await db.query(Q.CLEAR_LOGIN_FAILURES, [['client'], [k.client]]);
}

export async function pruneLoginFailures(db: Queryable): Promise<void> {
  await db.query(Q.PRUNE_LOGIN_FAILURES, [LOGIN_WINDOW_SECONDS]);
}
