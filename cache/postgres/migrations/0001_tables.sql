-- The store's tables (see the package doc and docs/postgres-store.md).
-- Migrate runs this in one transaction with search_path set to the store's
-- schema, and records it in schema_migrations.

-- One row per product key: its value, or a deletion (value NULL) that
-- keeps older versions out until expires_at. Only the primary key is
-- indexed, and pages keep 30% free, so that a refresh (a new version of
-- the row, same key) is a heap-only-tuple update: no index entry written,
-- dead versions pruned on the page.
CREATE TABLE cache_entries (
    key         text COLLATE "C" NOT NULL,
    version     bigint NOT NULL,
    computed_at timestamptz,
    stale_at    timestamptz,
    expires_at  timestamptz,
    codec       smallint NOT NULL DEFAULT 0,
    value       bytea,
    CONSTRAINT cache_entries_pkey PRIMARY KEY (key)
) WITH (fillfactor = 70);
-- Values of 1 KiB or more arrive zstd-compressed (codec 1): move large
-- ones out of line (TOAST) without compressing them again.
ALTER TABLE cache_entries ALTER COLUMN value SET STORAGE EXTERNAL;
COMMENT ON TABLE cache_entries IS 'kck: product values by key (version: microseconds; value NULL: deleted at version; codec 1: zstd)';

-- Compute and job leases: held by owner until expires_at (the database's
-- clock). A released lease stays, run out and with no owner, until the
-- sweep deletes it: the key's next refresh reuses the row.
CREATE TABLE leases (
    name       text COLLATE "C" NOT NULL,
    owner      text NOT NULL,
    expires_at timestamptz NOT NULL,
    CONSTRAINT leases_pkey PRIMARY KEY (name)
) WITH (fillfactor = 70);
COMMENT ON TABLE leases IS 'kck: leases (a key''s computation, a scheduled slot) held by owner until expires_at';

-- The refresh queue: one row per queued key and queue name (the columns
-- are queue.Item's). A row whose refresh is done is kept finished (done_at
-- set) until the sweep deletes it: the key's next request reuses the row.
CREATE TABLE refresh_queue (
    queue             text COLLATE "C" NOT NULL,
    key               text COLLATE "C" NOT NULL,
    version           bigint NOT NULL,
    requests          bigint NOT NULL,
    first_requested   timestamptz NOT NULL,
    last_requested    timestamptz NOT NULL,
    worker            text NOT NULL DEFAULT '',
    claimed_at        timestamptz,
    lease_until       timestamptz,
    claimed_requests  bigint NOT NULL DEFAULT 0,
    first_since_claim timestamptz,
    attempts          integer NOT NULL DEFAULT 0,
    unavailable       integer NOT NULL DEFAULT 0,
    not_before        timestamptz,
    poisoned          boolean NOT NULL DEFAULT false,
    last_error        text NOT NULL DEFAULT '',
    done_at           timestamptz,
    CONSTRAINT refresh_queue_pkey PRIMARY KEY (queue, key)
) WITH (fillfactor = 70);
COMMENT ON TABLE refresh_queue IS 'kck: the refresh queue, one row per queued key; worker holds a claim until lease_until; done_at set: finished, not queued';
