-- Run once by the postgres image on an empty volume (docker-entrypoint-initdb.d), as
-- POSTGRES_USER. Creates the two databases of the stack. `make up` creates the same ones
-- (scripts/stack/supervisor.py) on a local server.
-- psql variables are passed by docker/postgres/init.sh.
SELECT format('CREATE DATABASE %I', :'survey_db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'survey_db')\gexec
SELECT format('CREATE DATABASE %I', :'mlflow_db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'mlflow_db')\gexec
