-- Per-project secrets. The value is never kept in clear: sealed holds it
-- sealed (AES-256-GCM) under a data key, itself sealed under the
-- key-encryption key held outside the database, both bound to the
-- secret's project and name.
CREATE TABLE secrets (
    project_id text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    sealed     bytea NOT NULL,
    created_by text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (project_id, name)
);

--bun:split

-- The key check: a known value sealed under the key-encryption key, so that
-- a server started with another key refuses to start. One row at most.
CREATE TABLE secret_key_check (
    id         integer PRIMARY KEY CHECK (id = 1),
    sealed     bytea NOT NULL,
    updated_at timestamptz NOT NULL
);
