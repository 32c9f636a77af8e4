-- The network policy an admin set for a project (ANY, LOOPBACK, NONE);
-- projects without a row get the server's default (RDEV_LOCAL_NETWORK).
-- Kept in the database, where no command can write. Times are TEXT in UTC,
-- as elsewhere.
CREATE TABLE project_networks (
    project_id TEXT NOT NULL PRIMARY KEY,
    network    TEXT NOT NULL CHECK (network IN ('ANY', 'LOOPBACK', 'NONE')),
    updated_at TEXT NOT NULL
) STRICT;
