-- A command's env values are kept only until it starts: from then on the
-- names stay, each with an empty value. Clear the values that commands
-- which have started or ended still hold from before.
UPDATE commands
SET env = COALESCE((SELECT jsonb_object_agg(e.key, '') FROM jsonb_each(commands.env) AS e), '{}'::jsonb)
WHERE status <> 'QUEUED' AND env <> '{}'::jsonb;
