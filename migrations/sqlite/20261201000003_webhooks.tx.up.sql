-- Webhook endpoints. The secret is kept as it is: an HMAC key cannot be
-- checked against a hash. previous_secret signs too until it expires. Times
-- are TEXT in UTC, as in api_keys.
CREATE TABLE webhooks (
    id                         TEXT NOT NULL PRIMARY KEY,
    url                        TEXT NOT NULL,
    description                TEXT NOT NULL DEFAULT '',
    events                     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(events) AND json_type(events) = 'array'),
    secret                     TEXT NOT NULL,
    previous_secret            TEXT NOT NULL DEFAULT '',
    previous_secret_expires_at TEXT,
    enabled                    INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    disabled_reason            TEXT NOT NULL DEFAULT '',
    consecutive_failures       INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    created_by                 TEXT,
    created_at                 TEXT NOT NULL,
    updated_at                 TEXT NOT NULL
) STRICT;

--bun:split

-- The outbox: one row per message to one endpoint, written in the
-- transaction of the change it reports. message_id is the webhook-id header,
-- the same on every attempt; the latest attempt's outcome is kept on the row.
CREATE TABLE webhook_deliveries (
    id               TEXT NOT NULL PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    message_id       TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    event_at         TEXT NOT NULL,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TEXT,
    last_attempt_at  TEXT,
    response_code    INTEGER NOT NULL DEFAULT 0,
    error            TEXT NOT NULL DEFAULT '',
    latency_us       INTEGER NOT NULL DEFAULT 0,
    request_excerpt  TEXT NOT NULL DEFAULT '',
    response_excerpt TEXT NOT NULL DEFAULT '',
    created_at       TEXT NOT NULL,
    -- The worker sending it now, and until when; another worker may take it
    -- over only once the lease has expired.
    lease_owner      TEXT NOT NULL DEFAULT '',
    lease_expires_at TEXT,
    CHECK ((status = 'PENDING') = (next_attempt_at IS NOT NULL))
) STRICT;

--bun:split

-- One endpoint's deliveries, newest first.
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);

--bun:split

-- Pending deliveries, in the order they are sent.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (event_at, id) WHERE status = 'PENDING';

--bun:split

-- Deliveries being sent, by endpoint: a claim skips endpoints with one.
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (webhook_id, lease_expires_at) WHERE lease_expires_at IS NOT NULL;
