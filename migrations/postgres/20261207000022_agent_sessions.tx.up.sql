-- The agent session an agent run resumes (its request's sessionId); '' for
-- a run that starts a new session and for every other command.
ALTER TABLE commands ADD COLUMN agent_session text NOT NULL DEFAULT '';
--bun:split
-- One run of a session at a time: two QUEUED or RUNNING runs of one
-- project cannot resume the same session, however many replicas queue them.
CREATE UNIQUE INDEX commands_active_agent_session ON commands (project_id, agent_session)
    WHERE agent_session <> '' AND status IN ('QUEUED', 'RUNNING');
--bun:split
-- The summary of each agent run that ended with one (its AgentFinished), kept
-- once, so sessions can be summed without reading output again.
CREATE TABLE agent_runs (
    command_id        text NOT NULL PRIMARY KEY,
    project_id        text NOT NULL,
    session_id        text NOT NULL,
    status            text NOT NULL,
    result            text NOT NULL,
    cost_usd          double precision NOT NULL,
    input_tokens      bigint NOT NULL,
    output_tokens     bigint NOT NULL,
    cache_read_tokens bigint NOT NULL,
    num_turns         bigint NOT NULL,
    duration_ms       bigint NOT NULL,
    seq               bigint NOT NULL,
    event_index       bigint NOT NULL,
    ended_at          timestamptz NOT NULL
);
--bun:split
CREATE INDEX agent_runs_sessions ON agent_runs (project_id, session_id);
