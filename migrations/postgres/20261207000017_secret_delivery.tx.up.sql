-- How a secret reaches its project's commands: ENV (an environment
-- variable) or FILE (a file in the command's own secrets directory).
ALTER TABLE secrets ADD COLUMN delivery text NOT NULL DEFAULT 'ENV' CHECK (delivery IN ('ENV', 'FILE'));
