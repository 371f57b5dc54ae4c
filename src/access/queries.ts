import { named } from '../store/index.js';

/** Named SQL for identity and access. Time always comes from the database clock. */

// ---- personal tokens --------------------------------------------------------------

export const INSERT_TOKEN = named('fb_access_insert_token', `
  insert into api_tokens (id, user_name, groups, token_hash, description, created_by, expires_at)
  values ($1::text, $2::text, $3::text[], $4::text, $5::text, $6::text,
          case when $7::bigint is null then null else now() + make_interval(secs => $7::bigint) end)
  returning id, user_name, groups, description, created_at, created_by, expires_at, revoked_at, revoked_by, last_used_at`);

export const TOKEN_COLUMNS = `id, user_name, groups, description, created_at, created_by, expires_at, revoked_at, revoked_by, last_used_at`;

export const LIST_TOKENS = `
  select ${TOKEN_COLUMNS}, (expires_at is not null and expires_at <= now()) as expired
  from api_tokens
  where ($1::boolean or (revoked_at is null and (expires_at is null or expires_at > now())))
    and ($2::text is null or user_name = $2::text)
  order by created_at desc, id`;

export const TOKEN_BY_ID = named('fb_access_token_by_id', `
  select ${TOKEN_COLUMNS}, (expires_at is not null and expires_at <= now()) as expired
  from api_tokens where id = $1::text`);

/**
 * The identity behind a presented token: found by id, then its hash compared
 * by the caller in constant time. Usable only while neither revoked nor expired.
 */
export const ACTIVE_TOKEN = named('fb_access_active_token', `
  select id, user_name, groups, token_hash
  from api_tokens
  where id = $1::text and revoked_at is null and (expires_at is null or expires_at > now())`);

/** Any token by id, whatever its state: to tell a stale credential (revoked, expired) from a guess. */
export const TOKEN_STATE = named('fb_access_token_state', `
  select token_hash, revoked_at is not null as revoked, (expires_at is not null and expires_at <= now()) as expired
  from api_tokens where id = $1::text`);

/** last_used_at at minute precision: a busy script does not write on every call. */
export const TOUCH_TOKEN = named('fb_access_touch_token', `
  update api_tokens set last_used_at = now()
  where id = $1::text and (last_used_at is null or last_used_at < now() - interval '1 minute')`);

export const REVOKE_TOKEN = `
  update api_tokens set revoked_at = now(), revoked_by = $2::text
  where id = $1::text and revoked_at is null
  returning ${TOKEN_COLUMNS}`;

export const END_TOKEN_SESSIONS = `
  update sessions set ended_at = now(), ended_by = $2::text
  where token_id = $1::text and ended_at is null`;

// ---- sessions ------------------------------------------------------------------------

export const INSERT_SESSION = named('fb_access_insert_session', `
  insert into sessions (id_hash, actor, user_name, method, verified, groups, token_id, credential_hash, expires_at)
  values ($1::text, $2::text, $3::text, $4::text, $5::boolean, $6::text[], $7::text, $8::text, now() + make_interval(secs => $9::bigint))
  returning expires_at`);

/** A live session: not ended, not expired, and its token (if any) still usable. */
export const LIVE_SESSION = named('fb_access_live_session', `
  select s.actor, s.user_name, s.method, s.verified, s.groups, s.token_id, s.credential_hash
  from sessions s
  left join api_tokens t on t.id = s.token_id
  where s.id_hash = $1::text
    and s.ended_at is null
    and s.expires_at > now()
    and (s.token_id is null or (t.revoked_at is null and (t.expires_at is null or t.expires_at > now())))`);

export const END_SESSION = named('fb_access_end_session', `
  update sessions set ended_at = now(), ended_by = $2::text
  where id_hash = $1::text and ended_at is null
  returning actor`);

/** Housekeeping: sessions and pending logins long past their end. */
export const PRUNE_SESSIONS = `delete from sessions where expires_at < now() - interval '30 days'`;
export const PRUNE_OIDC_LOGINS = `delete from oidc_logins where expires_at < now()`;
export const PRUNE_LOGIN_FAILURES = `delete from login_failures where window_started_at < now() - make_interval(secs => $1::bigint)`;

// ---- login throttling ------------------------------------------------------------------

/**
 * Seconds until a key may try again (0 when it may now): blocked while the
 * failures in its window reached the limit. $1 scopes, $2 keys, $3 limits
 * (parallel arrays), $4 the window in seconds.
 */
export const LOGIN_BLOCKED = named('fb_access_login_blocked', `
  select coalesce(max(ceil(extract(epoch from (f.window_started_at + make_interval(secs => $4::bigint) - now())))), 0)::int as retry_after
  from unnest($1::text[], $2::text[], $3::int[]) as k(scope, key, max_failures)
  join login_failures f on f.scope = k.scope and f.key = k.key
  where f.failures >= k.max_failures
    and f.window_started_at + make_interval(secs => $4::bigint) > now()`);

/** Count one failure per key; a window that ended starts over. */
export const RECORD_LOGIN_FAILURE = named('fb_access_record_login_failure', `
  insert into login_failures (scope, key, failures, window_started_at)
  select scope, key, 1, now() from unnest($1::text[], $2::text[]) as k(scope, key)
  on conflict (scope, key) do update set
    failures = case when login_failures.window_started_at + make_interval(secs => $3::bigint) > now() then login_failures.failures + 1 else 1 end,
    window_started_at = case when login_failures.window_started_at + make_interval(secs => $3::bigint) > now() then login_failures.window_started_at else now() end`);


// ---- OpenID Connect logins ----------------------------------------------------------------

export const INSERT_OIDC_LOGIN = `
  insert into oidc_logins (state_hash, browser_hash, code_verifier, nonce, next, expires_at)
  values ($1::text, $2::text, $3::text, $4::text, $5::text, now() + make_interval(secs => $6::bigint))`;

/** Used once: the row is deleted as it is read, so a replayed callback finds nothing. */
export const TAKE_OIDC_LOGIN = `
  delete from oidc_logins where state_hash = $1::text
  returning browser_hash, code_verifier, nonce, next, expires_at > now() as live`;
