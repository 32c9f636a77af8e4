-- The agent session an agent run resumes (its request's sessionId); '' for
-- a run that starts a new session and for every other command.
ALTER TABLE commands ADD COLUMN agent_session TEXT NOT NULL DEFAULT '';
--bun:split
-- One run of a session at a time: two QUEUED or RUNNING runs of one
-- project cannot resume the same session, however many replicas queue them.
CREATE UNIQUE INDEX commands_active_agent_session ON commands (project_id, agent_session)
    WHERE agent_session <> '' AND status IN ('QUEUED', 'RUNNING');
