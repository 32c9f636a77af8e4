ALTER TABLE webhook_deliveries DROP COLUMN trace_state;

--bun:split

ALTER TABLE webhook_deliveries DROP COLUMN trace_parent;

--bun:split

ALTER TABLE commands DROP COLUMN trace_state;

--bun:split

ALTER TABLE commands DROP COLUMN trace_parent;
