-- API keys. IDs sort by creation time (see domain.NewID); the "C" collation
-- makes ORDER BY id and id > $after compare bytes, as the domain expects.
CREATE TABLE api_keys (
    id                         text COLLATE "C" PRIMARY KEY,
    name                       text NOT NULL,
    scopes                     jsonb NOT NULL DEFAULT '[]'::jsonb,
    secret_hash                text NOT NULL,
    previous_secret_hash       text NOT NULL DEFAULT '',
    previous_secret_expires_at timestamptz,
    rate_limit                 integer NOT NULL DEFAULT 0 CHECK (rate_limit >= 0),
    created_by                 text,
    created_at                 timestamptz NOT NULL,
    expires_at                 timestamptz,
    revoked_at                 timestamptz,
    last_used_at               timestamptz,
    CONSTRAINT api_keys_scopes_array CHECK (jsonb_typeof(scopes) = 'array')
);

--bun:split

-- The client networks a key may be used from, in the order they were given.
CREATE TABLE allowed_ips (
    key_id   text COLLATE "C" NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    position integer NOT NULL CHECK (position >= 0),
    cidr     cidr NOT NULL,
    PRIMARY KEY (key_id, position)
);
