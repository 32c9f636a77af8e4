-- Every change to a key's row raises its version, so that a process caching
-- keys learns which ones changed by reading versions alone.
ALTER TABLE api_keys ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version >= 1);
