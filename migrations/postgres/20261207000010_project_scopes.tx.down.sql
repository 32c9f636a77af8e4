ALTER TABLE webhooks DROP COLUMN project_selectors;

--bun:split

ALTER TABLE webhooks DROP COLUMN project_names;

--bun:split

ALTER TABLE api_keys DROP COLUMN project_selectors;

--bun:split

ALTER TABLE api_keys DROP COLUMN project_names;
