DROP TABLE IF EXISTS audit_chain_head;

--bun:split

DROP TABLE IF EXISTS audit_log;
