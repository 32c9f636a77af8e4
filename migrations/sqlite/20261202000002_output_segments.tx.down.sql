-- Chunks whose bytes are in segment files keep only their empty data: going
-- down loses them, while the files stay where they are.
ALTER TABLE command_output DROP COLUMN size;

--bun:split

ALTER TABLE command_output DROP COLUMN segment_offset;

--bun:split

ALTER TABLE command_output DROP COLUMN segment;
