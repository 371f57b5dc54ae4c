-- A playbook definition is stored once per content, not once per run. The
-- revision hash is computed here, by the database, over the definition's
-- jsonb text (jsonb prints keys in one canonical order), so every replica and
-- every version of the app name the same content the same way.
create table playbook_revisions (
  hash          text        primary key check (hash ~ '^[0-9a-f]{64}$'),
  name          text        not null,
  definition    jsonb       not null,
  -- The file it was first loaded from (null: sent with a request, or recorded by a run before revisions existed).
  file          text,
  first_seen_at timestamptz not null default fb_now()
);
create index playbook_revisions_name_idx on playbook_revisions (name, first_seen_at desc);

create function fb_revision_hash(definition jsonb) returns text
language sql immutable parallel safe as $$
  select encode(sha256(convert_to(definition::text, 'UTF8')), 'hex')
$$;

-- Runs created before this migration keep their own copy in runs.definition and get a revision too.
insert into playbook_revisions (hash, name, definition, first_seen_at)
select distinct on (fb_revision_hash(definition)) fb_revision_hash(definition), playbook, definition, created_at
from runs
order by fb_revision_hash(definition), created_at;

alter table runs add column revision text references playbook_revisions (hash);
update runs set revision = fb_revision_hash(definition);
alter table runs alter column definition drop not null;
alter table runs add constraint runs_has_definition check (revision is not null or definition is not null);
