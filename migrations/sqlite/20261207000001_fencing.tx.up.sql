-- A running command's lease carries an epoch, raised by every claim: writes
-- of its output and of its end are stored only under the owner and epoch
-- that hold it, so a process that lost the lease can write nothing more.
ALTER TABLE commands ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0 CHECK (lease_epoch >= 0);

--bun:split

-- Output that could not be stored (storage failed for longer than output is
-- held for it), apart from the bytes dropped by the output cap.
ALTER TABLE commands ADD COLUMN output_lost_bytes INTEGER NOT NULL DEFAULT 0 CHECK (output_lost_bytes >= 0);
