-- A key's project scope: the projects it may see and act on, by name and by
-- label selector (canonical selector text). Both empty means every project,
-- so keys made before keep seeing everything.
ALTER TABLE api_keys ADD COLUMN project_names jsonb NOT NULL DEFAULT '[]'::jsonb
    CONSTRAINT api_keys_project_names_array CHECK (jsonb_typeof(project_names) = 'array');

--bun:split

ALTER TABLE api_keys ADD COLUMN project_selectors jsonb NOT NULL DEFAULT '[]'::jsonb
    CONSTRAINT api_keys_project_selectors_array CHECK (jsonb_typeof(project_selectors) = 'array');

--bun:split

-- A webhook endpoint's project scope, copied from the key that created it:
-- it is sent only the events of the projects in it.
ALTER TABLE webhooks ADD COLUMN project_names jsonb NOT NULL DEFAULT '[]'::jsonb
    CONSTRAINT webhooks_project_names_array CHECK (jsonb_typeof(project_names) = 'array');

--bun:split

ALTER TABLE webhooks ADD COLUMN project_selectors jsonb NOT NULL DEFAULT '[]'::jsonb
    CONSTRAINT webhooks_project_selectors_array CHECK (jsonb_typeof(project_selectors) = 'array');
