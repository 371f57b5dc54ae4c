/**
 * Identity and access: who is asking (personal tokens, console sessions,
 * OpenID Connect, Slack ids, the service token, local mode), the route guard
 * that checks every route on the route the router matched, login throttling,
 * and authorization by policy (`firebreak/authorize`) for every act.
 * This file is the folder's only public surface.
 */
export {
  ANONYMOUS,
  NAME_PATTERN,
  SERVICE_ACTOR,
  actorOf,
  identity,
  isValidName,
  parseName,
  policyUser,
  reconcileUser,
  serviceIdentity,
  type AccessMode,
  type AuthMethod,
  type Identity,
} from './identity.js';
export { AS_HEADER, CONSOLE_HEADER, authenticate, bearerToken, csrfProblem, hostAllowed, installGuard, originForm, requireIdentity, secretsEqual, type AccessRule, type Authentication, type GuardOptions } from './guard.js';
export { Access, AUTHORIZE_ENTRYPOINT, SERVICE_CANNOT_APPROVE, type AccessDeps, type Verdict } from './authorize.js';
export { createToken, getToken, parseTtl, listTokens, revokeToken, verifyToken, checkNewToken, looksLikePersonalToken, staleTokenReason, tokenIdOf, sha256Hex, type NewToken, type TokenRecord } from './tokens.js';
export { SESSION_COOKIE, SESSION_TTL_SECONDS, createSession, endSession, pruneSessions, readSession, sessionValidity, type SessionValidity } from './sessions.js';
export { API_CLIENT_LIMIT, CLIENT_LIMIT, USER_LIMIT, LOGIN_WINDOW_SECONDS, bearerRetryAfter, clientKey, loginRetryAfter, pruneLoginFailures, recordBearerFailure, recordLoginFailure, type LoginKeys } from './throttle.js';
export { LoginError, OidcLogin, OIDC_BROWSER_COOKIE, OIDC_CALLBACK_PATH, OIDC_LOGIN_TTL_SECONDS, OIDC_PATH, groupsFromClaim, userNameFromClaims } from './oidc.js';
