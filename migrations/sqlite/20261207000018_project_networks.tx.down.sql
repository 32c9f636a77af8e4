DROP TABLE IF EXISTS project_networks;
