-- The agent session an agent run resumes (its request's sessionId); '' for
-- a run that starts a new session and for every other command.
ALTER TABLE commands ADD COLUMN agent_session TEXT NOT NULL DEFAULT '';
--bun:split
-- One run of a session at a time: two QUEUED or RUNNING runs of one
-- project cannot resume the same session, however many replicas queue them.
CREATE UNIQUE INDEX commands_active_agent_session ON commands (project_id, agent_session)
    WHERE agent_session <> '' AND status IN ('QUEUED', 'RUNNING');
--bun:split
-- The summary of each agent run that ended with one (its AgentFinished), kept
-- once, so sessions can be summed without reading output again.
CREATE TABLE agent_runs (
    command_id        TEXT NOT NULL PRIMARY KEY,
    project_id        TEXT NOT NULL,
    session_id        TEXT NOT NULL,
    status            TEXT NOT NULL,
    result            TEXT NOT NULL,
    cost_usd          REAL NOT NULL,
    input_tokens      INTEGER NOT NULL,
    output_tokens     INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    num_turns         INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    seq               INTEGER NOT NULL,
    event_index       INTEGER NOT NULL,
    ended_at          TEXT NOT NULL
) STRICT;
--bun:split
CREATE INDEX agent_runs_sessions ON agent_runs (project_id, session_id);
