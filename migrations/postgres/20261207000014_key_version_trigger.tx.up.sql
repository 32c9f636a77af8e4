-- A change to a key's row made outside rdev (an operator narrowing or
-- revoking a key by hand) raises its version too, as rdev's own changes do,
-- so that every process holding the key learns of it. Recording a use
-- (last_used_at) is no change; an update that sets the version itself is
-- left as it is.
CREATE FUNCTION api_keys_raise_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version = OLD.version
        AND to_jsonb(NEW) - 'last_used_at' IS DISTINCT FROM to_jsonb(OLD) - 'last_used_at' THEN
        NEW.version := OLD.version + 1;
    END IF;
    RETURN NEW;
END;
$$;

--bun:split

CREATE TRIGGER api_keys_raise_version BEFORE UPDATE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_raise_version();
