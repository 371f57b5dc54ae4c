/**
 * Throttling of credential guesses, in Postgres so every replica counts the
 * same failures.
 *
 * - Console logins: a client address that failed CLIENT_LIMIT times, or a
 *   user whose credential failed USER_LIMIT times, within the window is
 *   answered 429 with Retry-After until the window (started by its first
 *   failure) ends, even with the right credential: otherwise guessing just
 *   continues.
 * - API requests with a Bearer token: a client whose wrong tokens reached
 *   API_CLIENT_LIMIT in the window is answered 429 the same way (its own
 *   count: a typo in the console does not stop a script, and automation is
 *   never locked out by someone else's guesses).
 *
 * A success never clears a count: someone holding one valid token of their
 * own could otherwise reset their count between guesses at another.
 *
 * Clients are counted by address, IPv6 clients by their /64 (one host is
 * usually handed a whole /64, so counting single addresses would give one
 * guesser 2^64 fresh counts).
 */
import { isIP } from 'node:net';
import type { Queryable } from '../store/index.js';
import * as Q from './queries.js';

export const LOGIN_WINDOW_SECONDS = 15 * 60;
export const CLIENT_LIMIT = 10;
export const USER_LIMIT = 5;
export const API_CLIENT_LIMIT = 50;

export interface LoginKeys {
  client: string;
  /** The user a credential claims (a personal token's owner, `service`), when known. */
  user?: string;
}

/** The eight 16-bit groups of an IPv6 address, or undefined. */
function ipv6Groups(ip: string): number[] | undefined {
  let text = ip.split('%')[0]!.toLowerCase();
  // A trailing dotted quad (::ffff:1.2.3.4) is two groups.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...Array<string>(Math.max(0, fill)).fill('0'), ...right].map((g) => parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

/** The key a client address is counted under: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64. */
export function clientKey(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const groups = ipv6Groups(ip);
  if (!groups) return ip;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

interface Keys {
  scopes: string[];
  values: string[];
  limits: number[];
}

function loginKeys(k: LoginKeys): Keys {
  const keys: Keys = { scopes: ['client'], values: [clientKey(k.client)], limits: [CLIENT_LIMIT] };
  if (k.user) {
    keys.scopes.push('user');
    keys.values.push(k.user.toLowerCase());
    keys.limits.push(USER_LIMIT);
  }
  return keys;
}

/** API Bearer failures: their own count per client (`api <client>`), apart from console logins. */
function apiKeys(client: string): Keys {
  return { scopes: ['client'], values: [`api ${clientKey(client)}`], limits: [API_CLIENT_LIMIT] };
}

async function retryAfter(db: Queryable, { scopes, values, limits }: Keys): Promise<number> {
  const { rows } = await db.query<{ retry_after: number }>(Q.LOGIN_BLOCKED, [scopes, values, limits, LOGIN_WINDOW_SECONDS]);
  return Math.max(0, rows[0]?.retry_after ?? 0);
}

async function recordFailure(db: Queryable, { scopes, values }: Keys): Promise<void> {
  await db.query(Q.RECORD_LOGIN_FAILURE, [scopes, values, LOGIN_WINDOW_SECONDS]);
}

/** Seconds to wait before a console login may be tried again, or 0 when it may be tried now. */
export function loginRetryAfter(db: Queryable, k: LoginKeys): Promise<number> {
  return retryAfter(db, loginKeys(k));
}

export function recordLoginFailure(db: Queryable, k: LoginKeys): Promise<void> {
  return recordFailure(db, loginKeys(k));
}

/** Seconds before this client may present a Bearer token to the API again, or 0. */
export function bearerRetryAfter(db: Queryable, client: string): Promise<number> {
  return retryAfter(db, apiKeys(client));
}

export function recordBearerFailure(db: Queryable, client: string): Promise<void> {
  return recordFailure(db, apiKeys(client));
}

export async function pruneLoginFailures(db: Queryable): Promise<void> {
  await db.query(Q.PRUNE_LOGIN_FAILURES, [LOGIN_WINDOW_SECONDS]);
}
