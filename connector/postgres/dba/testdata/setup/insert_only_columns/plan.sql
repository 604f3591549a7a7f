-- Publication cdc: 1 mapped table, only the mapped columns, publishing insert (never truncate).
CREATE PUBLICATION "cdc" FOR TABLE
    "public"."apps" ("company_id", "status")
  WITH (publish = 'insert');
-- role: CREATE ROLE "cdc" WITH LOGIN REPLICATION;  -- then \password "cdc"; not a superuser
-- role: GRANT CONNECT ON DATABASE "baitoru" TO "cdc";
-- role: GRANT USAGE ON SCHEMA "public" TO "cdc";
-- role: GRANT SELECT ("company_id", "status") ON "public"."apps" TO "cdc";
