-- Webhook endpoints. The secret is kept as it is: an HMAC key cannot be
-- checked against a hash. previous_secret signs too until it expires.
CREATE TABLE webhooks (
    id                         text COLLATE "C" PRIMARY KEY,
    url                        text NOT NULL,
    description                text NOT NULL DEFAULT '',
    events                     jsonb NOT NULL DEFAULT '[]'::jsonb,
    secret                     text NOT NULL,
    previous_secret            text NOT NULL DEFAULT '',
    previous_secret_expires_at timestamptz,
    enabled                    boolean NOT NULL DEFAULT true,
    disabled_reason            text NOT NULL DEFAULT '',
    consecutive_failures       integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    created_by                 text,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    CONSTRAINT webhooks_events_array CHECK (jsonb_typeof(events) = 'array')
);

--bun:split

-- The outbox: one row per message to one endpoint, written in the
-- transaction of the change it reports. message_id is the webhook-id header,
-- the same on every attempt; the latest attempt's outcome is kept on the row.
CREATE TABLE webhook_deliveries (
    id               text COLLATE "C" PRIMARY KEY,
    webhook_id       text COLLATE "C" NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    message_id       text NOT NULL,
    event_type       text NOT NULL,
    event_at         timestamptz NOT NULL,
    body             text NOT NULL,
    status           text NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz,
    last_attempt_at  timestamptz,
    response_code    integer NOT NULL DEFAULT 0,
    error            text NOT NULL DEFAULT '',
    latency_us       bigint NOT NULL DEFAULT 0,
    request_excerpt  text NOT NULL DEFAULT '',
    response_excerpt text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    -- The worker sending it now, and until when; another worker may take it
    -- over only once the lease has expired.
    lease_owner      text NOT NULL DEFAULT '',
    lease_expires_at timestamptz,
    CONSTRAINT webhook_deliveries_due_iff_pending CHECK ((status = 'PENDING') = (next_attempt_at IS NOT NULL))
);

--bun:split

-- One endpoint's deliveries, newest first.
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);

--bun:split

-- Pending deliveries, in the order they are sent.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (event_at, id) WHERE status = 'PENDING';

--bun:split

-- Deliveries being sent, by endpoint: a claim skips endpoints with one.
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (webhook_id, lease_expires_at) WHERE lease_expires_at IS NOT NULL;
