-- A change to a key's row made outside rdev (an operator narrowing or
-- revoking a key by hand) raises its version too, as rdev's own changes do,
-- so that every process holding the key learns of it. Recording a use
-- (last_used_at) is no change; an update that sets the version itself is
-- left as it is.
CREATE TRIGGER api_keys_raise_version AFTER UPDATE ON api_keys
WHEN NEW.version = OLD.version AND (
    NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.scopes IS NOT OLD.scopes
    OR NEW.secret_hash IS NOT OLD.secret_hash OR NEW.previous_secret_hash IS NOT OLD.previous_secret_hash
    OR NEW.previous_secret_expires_at IS NOT OLD.previous_secret_expires_at
    OR NEW.rate_limit IS NOT OLD.rate_limit OR NEW.created_by IS NOT OLD.created_by
    OR NEW.created_at IS NOT OLD.created_at OR NEW.expires_at IS NOT OLD.expires_at
    OR NEW.revoked_at IS NOT OLD.revoked_at
    OR NEW.project_names IS NOT OLD.project_names OR NEW.project_selectors IS NOT OLD.project_selectors)
BEGIN
    UPDATE api_keys SET version = version + 1 WHERE id = NEW.id;
END;
