-- API keys. Times are TEXT written by bun as "YYYY-MM-DD HH:MM:SS.ffffff+00:00"
-- (always UTC, trailing zeros of the fraction dropped), which sorts and
-- compares correctly as text. IDs compare bytewise (SQLite's BINARY collation).
CREATE TABLE api_keys (
    id                         TEXT NOT NULL PRIMARY KEY,
    name                       TEXT NOT NULL,
    scopes                     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
    secret_hash                TEXT NOT NULL,
    previous_secret_hash       TEXT NOT NULL DEFAULT '',
    previous_secret_expires_at TEXT,
    rate_limit                 INTEGER NOT NULL DEFAULT 0 CHECK (rate_limit >= 0),
    created_by                 TEXT,
    created_at                 TEXT NOT NULL,
    expires_at                 TEXT,
    revoked_at                 TEXT,
    last_used_at               TEXT
) STRICT;

--bun:split

-- The client networks a key may be used from, in the order they were given.
CREATE TABLE allowed_ips (
    key_id   TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    position INTEGER NOT NULL CHECK (position >= 0),
    cidr     TEXT NOT NULL,
    PRIMARY KEY (key_id, position)
) STRICT, WITHOUT ROWID;
