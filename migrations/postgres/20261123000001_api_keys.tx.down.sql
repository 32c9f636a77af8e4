DROP TABLE IF EXISTS allowed_ips;

--bun:split

DROP TABLE IF EXISTS api_keys;
