DROP FUNCTION IF EXISTS rate_limiting_take(text, bigint, bigint, bigint, timestamptz);

--bun:split

DROP TABLE IF EXISTS rate_limiting;
