-- A command's env values are kept only until it starts: from then on the
-- names stay, each with an empty value. Clear the values that commands
-- which have started or ended still hold from before.
UPDATE commands
SET env = (SELECT json_group_object(e.key, '') FROM json_each(commands.env) AS e)
WHERE status <> 'QUEUED' AND env <> '{}';
