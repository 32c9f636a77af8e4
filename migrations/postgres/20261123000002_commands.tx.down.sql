DROP TABLE IF EXISTS command_output;

--bun:split

DROP TABLE IF EXISTS commands;
