-- Keyed audit chain (docs/audit.md). From this migration on, timeline hashes
-- are HMAC-SHA256 under the audit key; chains written before it were plain
-- SHA-256 and are verified as such, up to the boundary frozen here.

-- One append-only guard for every audit table; names the table it protects.
create function firebreak_append_only() returns trigger
language plpgsql as $$
begin
  raise exception '% is append-only: % is not allowed', tg_table_name, tg_op
    using errcode = 'insufficient_privilege';
end;
$$;

-- The unkeyed (legacy) prefix of each chain that existed before keyed hashing:
-- its last event's seq and hash. Filled once, here, then frozen (no insert
-- either), so nobody can later declare a new chain "legacy" to dodge the key.
-- "C" collation: `audit verify` streams it in byte order to recompute the seal.
create table timeline_legacy_heads (
  chain_id text collate "C" primary key,
  seq      integer not null check (seq >= 1),
  hash     text    not null check (hash ~ '^[0-9a-f]{64}$')
);
insert into timeline_legacy_heads (chain_id, seq, hash)
  select distinct on (chain_id) chain_id, seq, hash
  from timeline_events
  order by chain_id, seq desc;

-- A digest of the boundary, signed into every checkpoint: altering the
-- boundary table (as its owner, triggers off) then shows in `audit verify`.
-- digest = sha256 of the lines "<chain_id> <seq> <hash>" joined by "\n" in byte order.
create table timeline_legacy_seal (
  chains integer not null,
  digest text    not null check (digest ~ '^[0-9a-f]{64}$')
);
insert into timeline_legacy_seal (chains, digest)
  select count(*)::integer,
         encode(sha256(convert_to(coalesce(string_agg(chain_id || ' ' || seq || ' ' || hash, E'\n' order by chain_id), ''), 'UTF8')), 'hex')
  from timeline_legacy_heads;

-- Signed checkpoints: each fixes the heads of the chains that moved since the
-- one before, at a time, and names the previous checkpoint's signature, so
-- the checkpoints form a chain of their own. A copy kept outside the
-- database (log line, export) bounds what someone with owner rights and the
-- key can rewrite.
create table audit_checkpoints (
  seq              integer     primary key check (seq >= 1),
  time             timestamptz not null,
  prev_signature   text        not null check (prev_signature ~ '^[0-9a-f]{64}$'),
  heads_count      integer     not null check (heads_count >= 0),
  legacy_digest    text        not null check (legacy_digest ~ '^[0-9a-f]{64}$'),
  key_id           text        not null,
  signature        text        not null check (signature ~ '^[0-9a-f]{64}$'),
  -- Bookkeeping for the next writer (where to start looking for moved chains); not signed.
  through_event_id bigint      not null default 0
);
create index audit_checkpoints_time_idx on audit_checkpoints (time);

create table audit_checkpoint_heads (
  checkpoint integer not null references audit_checkpoints (seq),
  chain_id   text    not null,
  seq        integer not null check (seq >= 1),
  hash       text    not null check (hash ~ '^[0-9a-f]{64}$'),
  primary key (checkpoint, chain_id)
);
-- The latest checkpointed head of a chain, for the writer and for `audit verify`.
create index audit_checkpoint_heads_chain_idx on audit_checkpoint_heads (chain_id, checkpoint desc);

-- The guards: the legacy tables are frozen (no insert either); the checkpoint
-- tables take inserts only. TRUNCATE skips row triggers, so it gets its own.
do $$
declare
  t text;
begin
  foreach t in array array['timeline_legacy_heads', 'timeline_legacy_seal', 'audit_checkpoints', 'audit_checkpoint_heads'] loop
    execute format('create trigger %I before %s on %I for each row execute function firebreak_append_only()',
                   t || '_append_only',
                   case when t like 'timeline_legacy_%' then 'insert or update or delete' else 'update or delete' end,
                   t);
    execute format('create trigger %I before truncate on %I for each statement execute function firebreak_append_only()', t || '_no_truncate', t);
  end loop;
end;
$$;
