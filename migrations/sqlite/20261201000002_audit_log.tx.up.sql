-- The audit log: append-only and hash-chained. seq numbers entries 1, 2, 3
-- ... without gaps; hash is hex SHA-256 over prev_hash and the entry's
-- canonical encoding (domain.AuditCanonical). Times are TEXT in UTC, as in
-- api_keys; details is a JSON object of strings.
CREATE TABLE audit_log (
    seq        INTEGER NOT NULL PRIMARY KEY CHECK (seq > 0),
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL DEFAULT '',
    client_ip  TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT '',
    request_id TEXT NOT NULL DEFAULT '',
    action     TEXT NOT NULL,
    target     TEXT NOT NULL DEFAULT '',
    outcome    TEXT NOT NULL CHECK (outcome IN ('success', 'denied', 'failed')),
    error_code TEXT NOT NULL DEFAULT '',
    details    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details) AND json_type(details) = 'object'),
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
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

-- The chain head: the last entry's seq and hash. Appends run in write
-- transactions (BEGIN IMMEDIATE), which SQLite serializes.
CREATE TABLE audit_chain_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL CHECK (seq >= 0),
    hash TEXT NOT NULL
);

--bun:split

INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, '');

--bun:split

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE is not allowed');
END;

--bun:split

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: DELETE is not allowed');
END;

--bun:split

-- The head only moves forward and is never removed.
CREATE TRIGGER audit_chain_head_forward BEFORE UPDATE ON audit_chain_head
WHEN NEW.seq <= OLD.seq
BEGIN
    SELECT RAISE(ABORT, 'audit_chain_head only moves forward');
END;

--bun:split

CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
BEGIN
    SELECT RAISE(ABORT, 'audit_chain_head only moves forward');
END;
