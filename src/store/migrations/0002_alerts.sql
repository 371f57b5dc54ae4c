-- Every webhook delivery as received (the raw notification), and the alert
-- episodes it carries. An episode is (source, fingerprint, starts_at): however
-- often Alertmanager re-sends a firing group, the episode row is one row.
create table alert_notifications (
  id           bigint generated always as identity primary key,
  source       text        not null,
  received_at  timestamptz not null default now(),
  -- Vendor delivery id (PagerDuty X-Webhook-Id) for exact-redelivery dedup.
  delivery_id  text,
  alert_count  integer     not null,
  payload      jsonb       not null
);
create unique index alert_notifications_delivery_uq on alert_notifications (source, delivery_id) where delivery_id is not null;

create table alert_episodes (
  id              bigint generated always as identity primary key,
  source          text        not null,
  fingerprint     text        not null,
  starts_at       timestamptz not null,
  status          text        not null check (status in ('firing', 'resolved')),
  ends_at         timestamptz,
  labels          jsonb       not null,
  annotations     jsonb       not null,
  summary         text        not null default '',
  severity        text        not null default '',
  generator_url   text        not null default '',
  -- The latest normalised Alert, raw source object included.
  alert           jsonb       not null,
  deliveries      integer     not null default 1 check (deliveries >= 1),
  first_seen_at   timestamptz not null default now(),
  last_seen_at    timestamptz not null default now(),
  resolved_at     timestamptz,
  -- No foreign key: it would cost a trigger per upsert on the hot path, and notifications are never deleted.
  last_notification_id bigint,
  unique (source, fingerprint, starts_at)
);
create index alert_episodes_recent_idx on alert_episodes (first_seen_at desc, id desc);
create index alert_episodes_status_idx on alert_episodes (status, first_seen_at desc);
