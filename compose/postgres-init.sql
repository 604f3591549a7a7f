-- The DBA's part for docker-compose.yml (docs/dba.md explains it): run by
-- the postgres image's entrypoint in database baitoru after the sample
-- schema and rows (docker-entrypoint-initdb.d, alphabetical order).
-- Passwordless roles: the Compose setup trusts every connection; it is a
-- local playground, never a deployment.
CREATE ROLE baitoru_cdc LOGIN REPLICATION;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO baitoru_cdc;
CREATE ROLE baitoru_sink LOGIN;
CREATE DATABASE baitoru_sink OWNER baitoru_sink;
