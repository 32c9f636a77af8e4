ALTER TABLE commands DROP COLUMN output_lost_bytes;

--bun:split

ALTER TABLE commands DROP COLUMN lease_epoch;
