-- Publication cdc: 1 mapped table, only the mapped columns, row filters on 1, publishing insert (never truncate).
CREATE PUBLICATION "cdc" FOR TABLE
    "public"."apps" ("company_id") WHERE (status <> 'draft' AND email IS NOT NULL)
  WITH (publish = 'insert');
-- role: CREATE ROLE "cdc" WITH LOGIN REPLICATION;  -- then \password "cdc"; not a superuser
-- role: GRANT CONNECT ON DATABASE "baitoru" TO "cdc";
-- role: GRANT USAGE ON SCHEMA "public" TO "cdc";
-- role: GRANT SELECT ("company_id") ON "public"."apps" TO "cdc";
