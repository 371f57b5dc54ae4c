/**
 * Console single sign-on with OpenID Connect: authorization code flow with
 * PKCE (S256), state and nonce, through openid-client. The pending login
 * lives in Postgres (any replica may receive the callback), keyed by the
 * hash of `state`, bound to the browser that started it by a cookie, and
 * used once. The user is the ID token's `preferred_username` (else `email`);
 * groups come from a configurable claim, from the ID token or, when the
 * provider keeps claims there, from the userinfo endpoint.
 */
import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import type { Logger } from 'pino';
import type { OidcConfig } from '../config/index.js';
import { FirebreakError } from '../errors.js';
import type { Pool } from '../store/index.js';
import { identity, isValidName, type Identity } from './identity.js';
import * as Q from './queries.js';
import { digestsEqual, sha256Hex } from './tokens.js';

/** Cookie binding a pending login to the browser that started it (sent on the provider's redirect back, hence SameSite=Lax). */
export const OIDC_BROWSER_COOKIE = 'firebreak_oidc';
export const OIDC_PATH = '/auth/oidc';
export const OIDC_CALLBACK_PATH = `${OIDC_PATH}/callback`;
/** How long someone may take at the provider. */
export const OIDC_LOGIN_TTL_SECONDS = 10 * 60;

/** A sign-on that cannot complete; the message is safe to show on the login page. */
export class LoginError extends FirebreakError {
  readonly code = 'login_failed';
}

const GROUP = /^[A-Za-z0-9._:/@-]{1,128}$/;

/** The groups claim as providers send it: an array of strings, or one space/comma separated string. */
export function groupsFromClaim(value: unknown): string[] {
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(/[\s,]+/) : [];
  return [...new Set(items.filter((g): g is string => typeof g === 'string' && GROUP.test(g)))].sort();
}

/** A provider says the address was verified (`true`; some send the string "true"). */
function emailVerified(claims: Record<string, unknown>): boolean {
  return claims.email_verified === true || claims.email_verified === 'true';
}

/**
 * The user name a provider's claims give: preferred_username, else the email
 * address, and that only when the provider says it verified it: anyone can
 * type someone else's address into a sign-up form (OpenID Connect Core 5.7).
 */
export function userNameFromClaims(claims: Record<string, unknown>): string | undefined {
  const preferred = claims.preferred_username;
  if (typeof preferred === 'string' && preferred.trim() !== '') return preferred.trim();
  const email = claims.email;
  if (typeof email === 'string' && email.trim() !== '' && emailVerified(claims)) return email.trim();
  return undefined;
}

/** Why no user name came out of the claims, for the login page. */
function missingNameReason(claims: Record<string, unknown>): string {
  if (typeof claims.email === 'string' && claims.email.trim() !== '') {
    return `the sign-on provider gave no preferred_username, and does not say the email address ${claims.email.trim().slice(0, 80)} is verified (email_verified); an unverified address names nobody`;
  }
  return 'the sign-on provider gave no preferred_username or email for this account';
}

export interface OidcLoginOptions {
  config: OidcConfig;
  /** FIREBREAK_PUBLIC_URL: the redirect URI is `<public URL>/auth/oidc/callback`. */
  publicUrl: string;
  pool: Pool;
  logger: Logger;
}

export class OidcLogin {
  readonly redirectUri: string;
  private discovered: Promise<oidc.Configuration> | undefined;
  private readonly log: Logger;

  constructor(private readonly options: OidcLoginOptions) {
    this.redirectUri = `${options.publicUrl.replace(/\/+$/, '')}${OIDC_CALLBACK_PATH}`;
    this.log = options.logger.child({ component: 'oidc' });
  }

  /** Discovery on first use (the server starts even while the provider is down), retried after a failure. */
  private configuration(): Promise<oidc.Configuration> {
    if (!this.discovered) {
      const { issuer, clientId, clientSecret } = this.options.config;
      const url = new URL(issuer);
      // Config validation allows http only for a provider on loopback (tests, a local IdP).
      const insecure = url.protocol === 'http:';
      this.discovered = oidc
        .discovery(url, clientId, clientSecret, clientSecret ? undefined : oidc.None(), {
          timeout: 10,
          ...(insecure && { execute: [oidc.allowInsecureRequests] }),
        })
        .catch((err: unknown) => {
          this.discovered = undefined;
          this.log.error({ issuer, err: (err as Error).message }, 'OpenID provider discovery failed');
          throw new LoginError(`the sign-on provider at ${issuer} cannot be reached right now; try again shortly`, { cause: err });
        });
    }
    return this.discovered;
  }

  /** Start a login: store what the callback must check, and the URL to send the browser to. */
  async begin(next: string): Promise<{ url: string; browser: string }> {
    const config = await this.configuration();
    const codeVerifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const browser = randomBytes(32).toString('base64url');
    await this.options.pool.query(Q.INSERT_OIDC_LOGIN, [sha256Hex(state), sha256Hex(browser), codeVerifier, nonce, next, OIDC_LOGIN_TTL_SECONDS]);
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: this.redirectUri,
      scope: this.options.config.scopes,
      response_type: 'code',
      code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    return { url: url.href, browser };
  }

  /**
   * Finish a login from the provider's redirect: the pending login (by
   * state, once, in time, same browser), then the code exchange, which checks
   * state, nonce, PKCE, issuer, audience and the ID token's signature.
   */
  async complete(query: string, browser: string | undefined): Promise<{ identity: Identity; next: string }> {
    const params = new URLSearchParams(query);
    const providerError = params.get('error');
    if (providerError) throw new LoginError(`the sign-on provider refused: ${providerError}${params.get('error_description') ? ` (${params.get('error_description')})` : ''}`);
    const state = params.get('state');
    if (!state) throw new LoginError('the sign-on answer has no state; start again');
    const { rows } = await this.options.pool.query<{ browser_hash: string; code_verifier: string; nonce: string; next: string; live: boolean }>(Q.TAKE_OIDC_LOGIN, [sha256Hex(state)]);
    const pending = rows[0];
    if (!pending) throw new LoginError('this sign-on is unknown or was already used; start again');
    if (!pending.live) throw new LoginError('this sign-on took too long; start again');
    if (!browser || !digestsEqual(sha256Hex(browser), pending.browser_hash)) throw new LoginError('this sign-on was started in another browser; start again');

    const config = await this.configuration();
    const callback = new URL(this.redirectUri);
    callback.search = params.toString();
    let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
    try {
      tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: pending.code_verifier, expectedState: state, expectedNonce: pending.nonce, idTokenExpected: true });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'OpenID code exchange failed');
      throw new LoginError(`sign-on failed: ${(err as Error).message}`, { cause: err });
    }
    const claims: Record<string, unknown> = { ...(tokens.claims() ?? {}) };
    const groupsClaim = this.options.config.groupsClaim;
    if ((userNameFromClaims(claims) === undefined || claims[groupsClaim] === undefined) && tokens.access_token && config.serverMetadata().userinfo_endpoint) {
      try {
        const info = await oidc.fetchUserInfo(config, tokens.access_token, String(claims.sub));
        for (const [k, v] of Object.entries(info)) if (claims[k] === undefined) claims[k] = v;
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'OpenID userinfo failed; using the ID token claims only');
      }
    }
    const name = userNameFromClaims(claims);
    if (!name) throw new LoginError(missingNameReason(claims));
    if (!isValidName(name)) throw new LoginError(`the user name "${name.slice(0, 80)}" from the sign-on provider is not usable here (letters, digits and . _ @ + -, up to 64)`);
    return { identity: identity('oidc', name, { groups: groupsFromClaim(claims[groupsClaim]) }), next: pending.next };
  }
}
