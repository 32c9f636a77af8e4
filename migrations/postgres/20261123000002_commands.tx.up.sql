-- Commands and their queue state. IDs sort by creation time (domain.NewID),
-- so id ASC is submission order: FIFO within a priority, and id DESC pages
-- newest first. The "C" collation makes id comparisons bytewise.
CREATE TABLE commands (
    id               text COLLATE "C" PRIMARY KEY,
    project_id       text COLLATE "C" NOT NULL,
    key_id           text COLLATE "C" NOT NULL DEFAULT '',
    type             text NOT NULL,
    argv             jsonb NOT NULL,
    env              jsonb NOT NULL DEFAULT '{}'::jsonb,
    workdir          text NOT NULL DEFAULT '',
    priority         integer NOT NULL DEFAULT 0,
    timeout_ms       bigint NOT NULL DEFAULT 0 CHECK (timeout_ms >= 0),
    -- NULL when the client gave none; unique per key (commands_client_token).
    client_token     text,
    status           text NOT NULL CHECK (status IN
                         ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'INTERRUPTED')),
    exit_code        integer,
    signal           text NOT NULL DEFAULT '',
    reason           text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    output_bytes     bigint NOT NULL DEFAULT 0 CHECK (output_bytes >= 0),
    truncated        boolean NOT NULL DEFAULT false,
    last_seq         bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    cancel_requested boolean NOT NULL DEFAULT false,
    -- The dispatcher holding the lease while the command runs; the lease
    -- exists exactly while it runs. Owner is kept after the end.
    owner            text NOT NULL DEFAULT '',
    lease_expires_at timestamptz,
    CONSTRAINT commands_argv_array CHECK (jsonb_typeof(argv) = 'array'),
    CONSTRAINT commands_env_object CHECK (jsonb_typeof(env) = 'object'),
    CONSTRAINT commands_lease_iff_running CHECK ((status = 'RUNNING') = (lease_expires_at IS NOT NULL))
);

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
-- both streams. data is bytea, not text: text cannot hold NUL bytes, and a
-- process may write them.
CREATE TABLE command_output (
    command_id text COLLATE "C" NOT NULL REFERENCES commands (id) ON DELETE CASCADE,
    seq        bigint NOT NULL CHECK (seq > 0),
    stream     text NOT NULL CHECK (stream IN ('STDOUT', 'STDERR')),
    data       bytea NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (command_id, seq)
);
