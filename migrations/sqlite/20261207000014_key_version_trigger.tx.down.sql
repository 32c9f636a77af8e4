DROP TRIGGER api_keys_raise_version;
