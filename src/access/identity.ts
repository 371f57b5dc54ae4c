/**
 * Who is asking. Every request that reaches an act carries one Identity,
 * established by the request's credential (never by a name in its body), and
 * the same object is what policies see as `user`.
 */
import type { AccessMode, AuthMethod, PolicyUser } from '../policy/index.js';
import { ValidationError } from '../errors.js';

export type { AccessMode, AuthMethod };

/** The policy's `user` plus where the identity came from (for revocation and logout). */
export interface Identity extends PolicyUser {
  /** The console session that carried it. */
  sessionId?: string;
  /** The personal token that carried it (directly or through a session). */
  tokenId?: string;
}

/** Names people use: `alice`, `alice.smith@example.com`. Also what tokens and local mode accept. */
export const NAME_PATTERN = /^[A-Za-z0-9._@+-]{1,64}$/;

/** The actor written for FIREBREAK_API_TOKEN. */
export const SERVICE_ACTOR = 'service';

export function isValidName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

/** A name from a request (header, form, body), or a 400 naming the field. */
export function parseName(value: unknown, field: string): string {
  const name = typeof value === 'string' ? value.trim() : '';
  if (!isValidName(name)) {
    throw new ValidationError(`${field} must be a name of 1-64 letters, digits and . _ @ + -`, [{ path: field, message: 'letters, digits and . _ @ + - (up to 64)' }]);
  }
  return name;
}

/** Actor strings are `<method>:<name>`; the service token is plain `service`. */
export function actorOf(method: AuthMethod, name: string): string {
  return method === 'service' ? SERVICE_ACTOR : `${method}:${name}`;
}

export function identity(method: AuthMethod, name: string, options: { groups?: readonly string[]; verified?: boolean; sessionId?: string; tokenId?: string } = {}): Identity {
  return {
    id: actorOf(method, name),
    name,
    method,
    verified: options.verified ?? method !== 'local',
    groups: [...new Set(options.groups ?? [])].sort(),
    ...(options.sessionId && { sessionId: options.sessionId }),
    ...(options.tokenId && { tokenId: options.tokenId }),
  };
}

export const serviceIdentity = (): Identity => identity('service', SERVICE_ACTOR);

/** Local mode before anyone said who they are. */
export const ANONYMOUS = 'anonymous';

/** The `user` object handed to policies (no session or token ids). */
export function policyUser(who: Identity): PolicyUser {
  return { id: who.id, name: who.name, method: who.method, verified: who.verified, groups: who.groups };
}

/**
 * Reconcile a `user` field in a request body with who authenticated. A name
 * in a body is never an identity: it must match (name or actor string), or
 * the request is a 400. In local mode, before anyone named themselves, it is
 * taken as the (unverified) name claimed.
 */
export function reconcileUser(who: Identity, bodyUser: string | undefined): Identity {
  if (bodyUser === undefined) return who;
  const claimed = bodyUser.trim();
  if (who.method === 'local' && who.name === ANONYMOUS && !who.sessionId) return identity('local', parseName(claimed, 'user'));
  if (claimed === who.name || claimed === who.id) return who;
  throw new ValidationError(`user "${claimed}" is not who authenticated (${who.id}); leave the field out: the actor is always the authenticated identity`, [
    { path: 'user', message: `must be omitted or equal ${who.name}` },
  ]);
}
