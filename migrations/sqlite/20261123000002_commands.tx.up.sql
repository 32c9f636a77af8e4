-- Commands and their queue state. IDs sort by creation time (domain.NewID),
-- so id ASC is submission order: FIFO within a priority, and id DESC pages
-- newest first. Times are TEXT in UTC, as in api_keys; booleans are 0 or 1.
CREATE TABLE commands (
    id               TEXT NOT NULL PRIMARY KEY,
    project_id       TEXT NOT NULL,
    key_id           TEXT NOT NULL DEFAULT '',
    type             TEXT NOT NULL,
    argv             TEXT NOT NULL CHECK (json_valid(argv) AND json_type(argv) = 'array'),
    env              TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(env) AND json_type(env) = 'object'),
    workdir          TEXT NOT NULL DEFAULT '',
    priority         INTEGER NOT NULL DEFAULT 0,
    timeout_ms       INTEGER NOT NULL DEFAULT 0 CHECK (timeout_ms >= 0),
    -- NULL when the client gave none; unique per key (commands_client_token).
    client_token     TEXT,
    status           TEXT NOT NULL CHECK (status IN
                         ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'INTERRUPTED')),
    exit_code        INTEGER,
    signal           TEXT NOT NULL DEFAULT '',
    reason           TEXT NOT NULL DEFAULT '',
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    output_bytes     INTEGER NOT NULL DEFAULT 0 CHECK (output_bytes >= 0),
    truncated        INTEGER NOT NULL DEFAULT 0 CHECK (truncated IN (0, 1)),
    last_seq         INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    -- The dispatcher holding the lease while the command runs; the lease
    -- exists exactly while it runs. Owner is kept after the end.
    owner            TEXT NOT NULL DEFAULT '',
    lease_expires_at TEXT,
    CONSTRAINT commands_lease_iff_running CHECK ((status = 'RUNNING') = (lease_expires_at IS NOT NULL))
) STRICT;

--bun:split

-- A key's client tokens are unique. Partial, so commands without one (NULL)
-- neither conflict nor cost an index entry on every status change.
CREATE UNIQUE INDEX commands_client_token ON commands (key_id, client_token) WHERE client_token IS NOT NULL;

--bun:split

-- The queue, in claim order: only QUEUED rows, so it stays small. Statements
-- on one command by ID test no status = 'QUEUED' for the reason given at
-- commands_running.
CREATE INDEX commands_queue ON commands (priority DESC, id) WHERE status = 'QUEUED';

--bun:split

-- A project's commands, newest first.
CREATE INDEX commands_project ON commands (project_id, id);

--bun:split

-- RUNNING commands (those with a lease): by lease for expiry, with the
-- project for the per-project concurrency count. The predicate is on the
-- lease, not the status, so that statements on one command by ID and status
-- (WHERE id = $1 AND status = 'RUNNING') cannot match it: with stale
-- statistics the planner would scan the whole index rather than use the
-- primary key.
CREATE INDEX commands_running ON commands (lease_expires_at, project_id) WHERE lease_expires_at IS NOT NULL;

--bun:split

-- A key's queued commands, for its queue limit.
CREATE INDEX commands_queued_key ON commands (key_id) WHERE status = 'QUEUED';

--bun:split

-- Command output as numbered chunks, seq 1, 2, 3 ... per command across
-- both streams. data is a BLOB: output is kept byte for byte. (Not WITHOUT
-- ROWID: chunks can be larger than such tables suit.)
CREATE TABLE command_output (
    command_id TEXT NOT NULL REFERENCES commands (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL CHECK (seq > 0),
    stream     TEXT NOT NULL CHECK (stream IN ('STDOUT', 'STDERR')),
    data       BLOB NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (command_id, seq)
) STRICT;
