ALTER TABLE commands DROP COLUMN agent_protocol;
