DROP TABLE IF EXISTS audit_chain_head;

--bun:split

DROP TABLE IF EXISTS audit_log;

--bun:split

DROP FUNCTION IF EXISTS audit_chain_head_forward();

--bun:split

DROP FUNCTION IF EXISTS audit_log_append_only();
