-- The network policy an admin set for a project (ANY, LOOPBACK, NONE);
-- projects without a row get the server's default (RDEV_LOCAL_NETWORK).
-- Kept in the database, where no command can write.
CREATE TABLE project_networks (
    project_id text COLLATE "C" PRIMARY KEY,
    network    text NOT NULL CHECK (network IN ('ANY', 'LOOPBACK', 'NONE')),
    updated_at timestamptz NOT NULL
);
