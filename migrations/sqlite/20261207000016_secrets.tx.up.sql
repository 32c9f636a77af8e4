-- Per-project secrets. The value is never kept in clear: sealed holds it
-- sealed (AES-256-GCM) under a data key, itself sealed under the
-- key-encryption key held outside the database, both bound to the
-- secret's project and name. Times are TEXT in UTC, as elsewhere.
CREATE TABLE secrets (
    project_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (project_id, name)
) STRICT;

--bun:split

-- The key check: a known value sealed under the key-encryption key, so that
-- a server started with another key refuses to start. One row at most.
CREATE TABLE secret_key_check (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    sealed     BLOB NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
