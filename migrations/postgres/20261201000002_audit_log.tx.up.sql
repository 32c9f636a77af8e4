-- The audit log: append-only and hash-chained. seq numbers entries 1, 2, 3
-- ... without gaps; hash is hex SHA-256 over prev_hash and the entry's
-- canonical encoding (domain.AuditCanonical). details is a JSON object of
-- strings, kept as text so that it reads back exactly as it was written.
CREATE TABLE audit_log (
    seq        bigint PRIMARY KEY CHECK (seq > 0),
    at         timestamptz NOT NULL,
    actor      text COLLATE "C" NOT NULL DEFAULT '',
    client_ip  text NOT NULL DEFAULT '',
    user_agent text NOT NULL DEFAULT '',
    request_id text NOT NULL DEFAULT '',
    action     text COLLATE "C" NOT NULL,
    target     text COLLATE "C" NOT NULL DEFAULT '',
    outcome    text NOT NULL CHECK (outcome IN ('success', 'denied', 'failed')),
    error_code text NOT NULL DEFAULT '',
    details    text NOT NULL DEFAULT '{}',
    prev_hash  text NOT NULL,
    hash       text NOT NULL
);

--bun:split

CREATE INDEX audit_log_actor ON audit_log (actor, seq);

--bun:split

CREATE INDEX audit_log_action ON audit_log (action, seq);

--bun:split

CREATE INDEX audit_log_target ON audit_log (target, seq);

--bun:split

CREATE INDEX audit_log_at ON audit_log (at);

--bun:split

-- The chain head: the last entry's seq and hash, in one row that every
-- append locks (SELECT ... FOR UPDATE), so appends from any number of
-- processes take turns and the chain stays linear. It also lets a verifier
-- notice entries removed from the end.
CREATE TABLE audit_chain_head (
    id   integer PRIMARY KEY CHECK (id = 1),
    seq  bigint NOT NULL CHECK (seq >= 0),
    hash text NOT NULL
);

--bun:split

INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, '');

--bun:split

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

--bun:split

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

--bun:split

CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

--bun:split

-- The head only moves forward and is never removed.
CREATE FUNCTION audit_chain_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.seq <= OLD.seq THEN
        RAISE EXCEPTION 'audit_chain_head only moves forward'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

--bun:split

CREATE TRIGGER audit_chain_head_forward BEFORE UPDATE OR DELETE ON audit_chain_head
    FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward();
