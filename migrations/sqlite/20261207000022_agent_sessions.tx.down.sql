DROP TABLE agent_runs;
--bun:split
DROP INDEX commands_active_agent_session;
--bun:split
ALTER TABLE commands DROP COLUMN agent_session;
