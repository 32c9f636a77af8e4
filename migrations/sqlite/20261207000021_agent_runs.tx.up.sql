-- The AgentProtocol of an agent run (domain.AgentService), whose standard
-- output that protocol reads; '' for every other command.
ALTER TABLE commands ADD COLUMN agent_protocol TEXT NOT NULL DEFAULT '';
