-- note: publish applies to every table of the publication: updates of public.apps also leave the server (another table maps them); the connector drops them, its mapping publishes insert only.
-- identity: public.by_index (mapped with insert, update): replica identity is index by_index_u_key (u): an update/delete event's old row carries only those columns. For whole old rows: ALTER TABLE "public"."by_index" REPLICA IDENTITY FULL (more WAL; no column list then).
-- Publication cdc: 2 mapped tables, only the mapped columns, publishing insert, update (never truncate).
CREATE PUBLICATION "cdc" FOR TABLE
    "public"."apps" ("company_id", "id"),
    "public"."by_index" ("a", "u")
  WITH (publish = 'insert, update');
-- role: CREATE ROLE "cdc" WITH LOGIN REPLICATION;  -- then \password "cdc"; not a superuser
-- role: GRANT CONNECT ON DATABASE "baitoru" TO "cdc";
-- role: GRANT USAGE ON SCHEMA "public" TO "cdc";
-- role: GRANT SELECT ("company_id", "id") ON "public"."apps" TO "cdc";
-- role: GRANT SELECT ("a", "u") ON "public"."by_index" TO "cdc";
