-- identity: public.apps (mapped with insert, update): replica identity is the primary key (id): an update/delete event's old row carries only those columns. For whole old rows: ALTER TABLE "public"."apps" REPLICA IDENTITY FULL (more WAL; no column list then).
-- Publication cdc: 1 mapped table, only the mapped columns, publishing insert, update (never truncate).
CREATE PUBLICATION "cdc" FOR TABLE
    "public"."apps" ("company_id", "status", "id")
  WITH (publish = 'insert, update');
-- role: CREATE ROLE "cdc" WITH LOGIN REPLICATION;  -- then \password "cdc"; not a superuser
-- role: GRANT CONNECT ON DATABASE "baitoru" TO "cdc";
-- role: GRANT USAGE ON SCHEMA "public" TO "cdc";
-- role: GRANT SELECT ("company_id", "status", "id") ON "public"."apps" TO "cdc";
