-- A key's children are the keys it created: revoking a key revokes them, a
-- generation at a time, each found by its creator.
CREATE INDEX api_keys_created_by ON api_keys (created_by);
