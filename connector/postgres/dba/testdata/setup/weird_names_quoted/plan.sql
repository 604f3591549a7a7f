-- identity: public.weird; drop (mapped with insert, update): replica identity is the primary key (Id): an update/delete event's old row carries only those columns. For whole old rows: ALTER TABLE "public"."weird; drop" REPLICA IDENTITY FULL (more WAL; no column list then).
-- Publication cdc: 1 mapped table, only the mapped columns, row filters on 1, publishing insert, update (never truncate).
CREATE PUBLICATION "cdc" FOR TABLE
    "public"."weird; drop" ("a""b", "Id") WHERE ("a""b" <> 'x;y')
  WITH (publish = 'insert, update');
-- role: CREATE ROLE "cdc" WITH LOGIN REPLICATION;  -- then \password "cdc"; not a superuser
-- role: GRANT CONNECT ON DATABASE "baitoru" TO "cdc";
-- role: GRANT USAGE ON SCHEMA "public" TO "cdc";
-- role: GRANT SELECT ("a""b", "Id") ON "public"."weird; drop" TO "cdc";
