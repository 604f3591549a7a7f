-- note: public.full_t has REPLICA IDENTITY FULL and the publication publishes update: PostgreSQL then allows no column list, so every column of it leaves the server; the connector publishes only the mapped ones.
-- identity: public.full_t (mapped with insert, update): REPLICA IDENTITY FULL: an event's old row carries every column (more WAL per update/delete).
-- Publication cdc: 1 mapped table, row filters on 1, publishing insert, update (never truncate).
CREATE PUBLICATION "cdc" FOR TABLE
    "public"."full_t" WHERE (b = 'x')
  WITH (publish = 'insert, update');
-- role: CREATE ROLE "cdc" WITH LOGIN REPLICATION;  -- then \password "cdc"; not a superuser
-- role: GRANT CONNECT ON DATABASE "baitoru" TO "cdc";
-- role: GRANT USAGE ON SCHEMA "public" TO "cdc";
-- role: GRANT SELECT ON "public"."full_t" TO "cdc";
