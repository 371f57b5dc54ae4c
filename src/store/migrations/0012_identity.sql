-- Identity and access: personal API tokens, server-side console sessions,
-- login throttling and pending OpenID Connect logins. Secrets are stored only
-- as SHA-256 hashes (tokens and session ids are 256-bit random values, so a
-- fast hash is enough: there is nothing to brute-force).

-- `firebreak token create <user>`: the token is printed once, only its hash
-- is kept. The id is public (list, revoke) and also part of the token, so a
-- presented token is found by id and compared by hash.
create table api_tokens (
  id            text        primary key check (id ~ '^[0-9a-f]{16}$'),
  user_name     text        not null check (user_name ~ '^[A-Za-z0-9._@+-]{1,64}$'),
  groups        text[]      not null default '{}',
  token_hash    text        not null unique check (token_hash ~ '^[0-9a-f]{64}$'),
  description   text,
  created_at    timestamptz not null default now(),
  created_by    text        not null,
  -- null: never expires
  expires_at    timestamptz,
  revoked_at    timestamptz,
  revoked_by    text,
  last_used_at  timestamptz,
  check (expires_at is null or expires_at > created_at)
);
create index api_tokens_user_idx on api_tokens (user_name);

-- Console sessions. The cookie holds a random id; the database holds its hash,
-- who the session is, and when it ends (database clock). Logout and token
-- revocation set ended_at; lookups require ended_at is null and
-- expires_at > now().
create table sessions (
  id_hash          text        primary key check (id_hash ~ '^[0-9a-f]{64}$'),
  actor            text        not null,
  user_name        text        not null,
  method           text        not null check (method in ('token', 'oidc', 'service', 'local')),
  verified         boolean     not null,
  groups           text[]      not null default '{}',
  -- a session opened with a personal token ends when the token is revoked
  token_id         text        references api_tokens (id),
  -- a session opened with FIREBREAK_API_TOKEN holds the token's hash: changing the token ends it
  credential_hash  text,
  created_at       timestamptz not null default now(),
  expires_at       timestamptz not null,
  ended_at         timestamptz,
  ended_by         text,
  check (expires_at > created_at)
);
create index sessions_token_idx on sessions (token_id) where token_id is not null;
create index sessions_expires_idx on sessions (expires_at);

-- Failed console logins, counted per client address and per user in a
-- fixed window that starts at the first failure. Shared by every replica.
create table login_failures (
  scope              text        not null check (scope in ('client', 'user')),
  key                text        not null,
  failures           integer     not null check (failures >= 1),
  window_started_at  timestamptz not null,
  primary key (scope, key)
);

-- An OpenID Connect login between the redirect to the provider and its
-- callback: looked up by the hash of `state`, bound to the browser that
-- started it (hash of a cookie), used once, short-lived.
create table oidc_logins (
  state_hash     text        primary key check (state_hash ~ '^[0-9a-f]{64}$'),
  browser_hash   text        not null check (browser_hash ~ '^[0-9a-f]{64}$'),
  code_verifier  text        not null,
  nonce          text        not null,
  next           text        not null,
  created_at     timestamptz not null default now(),
  expires_at     timestamptz not null
);
create index oidc_logins_expires_idx on oidc_logins (expires_at);
