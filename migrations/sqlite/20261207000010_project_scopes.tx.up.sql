-- A key's project scope: the projects it may see and act on, by name and by
-- label selector (canonical selector text). Both empty means every project,
-- so keys made before keep seeing everything.
ALTER TABLE api_keys ADD COLUMN project_names TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(project_names) AND json_type(project_names) = 'array');

--bun:split

ALTER TABLE api_keys ADD COLUMN project_selectors TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(project_selectors) AND json_type(project_selectors) = 'array');

--bun:split

-- A webhook endpoint's project scope, copied from the key that created it:
-- it is sent only the events of the projects in it.
ALTER TABLE webhooks ADD COLUMN project_names TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(project_names) AND json_type(project_names) = 'array');

--bun:split

ALTER TABLE webhooks ADD COLUMN project_selectors TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(project_selectors) AND json_type(project_selectors) = 'array');
