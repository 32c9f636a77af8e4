-- The bytes of a chunk stored from now on are in an append-only segment file
-- beside the database (rdev.db-output/), not in the row: the row keeps the
-- segment's number, the offset of the bytes in it and their size, and data
-- is empty. Rows stored before keep their bytes in data, with segment NULL.
ALTER TABLE command_output ADD COLUMN segment INTEGER CHECK (segment > 0);

--bun:split

ALTER TABLE command_output ADD COLUMN segment_offset INTEGER CHECK (segment_offset >= 0);

--bun:split

-- The size of every chunk, wherever its bytes are.
ALTER TABLE command_output ADD COLUMN size INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0);

--bun:split

UPDATE command_output SET size = length(data);
