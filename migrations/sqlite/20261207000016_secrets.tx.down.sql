DROP TABLE IF EXISTS secret_key_check;

--bun:split

DROP TABLE IF EXISTS secrets;
