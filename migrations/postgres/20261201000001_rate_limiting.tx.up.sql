-- Rate limiting: an exact sliding-window log of the charges to each budget
-- (infra/ratelimit.PostgresStore). A charge at "at" of n units counts until
-- expires_at (at + the budget's window); expired rows are deleted as the key
-- is next charged, and by a periodic sweep.
CREATE TABLE rate_limiting (
    key        text COLLATE "C" NOT NULL,
    at         timestamptz NOT NULL,
    n          bigint NOT NULL CHECK (n > 0),
    expires_at timestamptz NOT NULL
);

--bun:split

CREATE INDEX rate_limiting_key_at ON rate_limiting (key, at);

--bun:split

CREATE INDEX rate_limiting_expires_at ON rate_limiting (expires_at);

--bun:split

-- rate_limiting_take charges p_n units to p_key if at most p_limit units stay
-- in the window of p_period_us microseconds ending now, and reports the
-- window's state. It is the one place the check and the charge happen, under
-- a transaction-scoped advisory lock on the key, so any number of rdev
-- processes on this database share each budget exactly. p_n = 0 only reads.
-- p_now is NULL in production (the database's clock, the same for every
-- process); tests pass a time to step through windows.
CREATE FUNCTION rate_limiting_take(p_key text, p_n bigint, p_limit bigint, p_period_us bigint, p_now timestamptz)
RETURNS TABLE (out_used bigint, out_oldest timestamptz, out_taken boolean, out_now timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    t      timestamptz;
    period interval := p_period_us * interval '1 microsecond';
BEGIN
    -- A charge lost in a crash costs nothing worth a disk flush per request.
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_advisory_xact_lock(hashtextextended('rate_limiting:' || p_key, 0));
    -- Read the clock once the lock is held, so charges are logged in the
    -- order they were made.
    t := coalesce(p_now, clock_timestamp());
    DELETE FROM rate_limiting r WHERE r.key = p_key AND r.at <= t - period;
    SELECT coalesce(sum(r.n), 0), min(r.at) INTO out_used, out_oldest
        FROM rate_limiting r WHERE r.key = p_key;
    out_taken := p_n > 0 AND out_used + p_n <= p_limit;
    IF out_taken THEN
        INSERT INTO rate_limiting (key, at, n, expires_at) VALUES (p_key, t, p_n, t + period);
        out_used := out_used + p_n;
        out_oldest := coalesce(out_oldest, t);
    END IF;
    out_now := t;
    RETURN NEXT;
END
$$;
