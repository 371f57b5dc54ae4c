-- The playbook file's text as it was when its revision was first seen, so a
-- reader can see (and the console can diff) the YAML a run executed. Null for
-- revisions stored before this migration and for definitions without a file.
alter table playbook_revisions add column source text;
-- A playbook's history counts the runs of each revision.
create index runs_revision_idx on runs (revision);
