DROP TRIGGER api_keys_raise_version ON api_keys;

--bun:split

DROP FUNCTION api_keys_raise_version();
