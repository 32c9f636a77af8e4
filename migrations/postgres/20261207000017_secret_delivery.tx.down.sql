ALTER TABLE secrets DROP COLUMN delivery;
