-- Nothing changes on Postgres, which keeps each chunk's bytes in its row;
-- on SQLite this migration moves the bytes of new chunks to segment files.
SELECT 1;
