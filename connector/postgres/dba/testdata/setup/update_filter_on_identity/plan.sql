-- identity: public.apps (mapped with insert, update, delete): replica identity is the primary key (id): an update/delete event's old row carries only those columns. For whole old rows: ALTER TABLE "public"."apps" REPLICA IDENTITY FULL (more WAL; no column list then).
-- Publication cdc: 1 mapped table, only the mapped columns, row filters on 1, publishing insert, update, delete (never truncate).
CREATE PUBLICATION "cdc" FOR TABLE
    "public"."apps" ("id", "status") WHERE (id > 100)
  WITH (publish = 'insert, update, delete');
-- role: CREATE ROLE "cdc" WITH LOGIN REPLICATION;  -- then \password "cdc"; not a superuser
-- role: GRANT CONNECT ON DATABASE "baitoru" TO "cdc";
-- role: GRANT USAGE ON SCHEMA "public" TO "cdc";
-- role: GRANT SELECT ("id", "status") ON "public"."apps" TO "cdc";
