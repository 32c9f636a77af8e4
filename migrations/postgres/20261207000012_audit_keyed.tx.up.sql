-- Audit entries MACed with an audit key name it here (domain.AuditKeyID);
-- their hash is then the HMAC-SHA-256 of their canonical encoding
-- ("rdev-audit-v2") under that key. Entries made before a key was configured
-- keep '' and their plain SHA-256 ("rdev-audit-v1").
ALTER TABLE audit_log ADD COLUMN key_id text NOT NULL DEFAULT '';
