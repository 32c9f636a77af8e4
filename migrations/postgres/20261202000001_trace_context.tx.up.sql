-- The W3C trace context (traceparent, tracestate) of the request that queued
-- a command, so that its run joins that trace in whichever process claims
-- it; and of the change that queued a webhook message, sent with each
-- attempt. Empty when there was no trace.
ALTER TABLE commands ADD COLUMN trace_parent text NOT NULL DEFAULT '';

--bun:split

ALTER TABLE commands ADD COLUMN trace_state text NOT NULL DEFAULT '';

--bun:split

ALTER TABLE webhook_deliveries ADD COLUMN trace_parent text NOT NULL DEFAULT '';

--bun:split

ALTER TABLE webhook_deliveries ADD COLUMN trace_state text NOT NULL DEFAULT '';
