-- Sample Baitoru schema: the tables baitoru-cdc maps in the shipped
-- config.yaml. It is a trimmed-down stand-in for Baitoru's real schema, used
-- by the demo and by integration tests. Run it on a fresh database:
--
--   psql -v ON_ERROR_STOP=1 -d baitoru -f testdata/schema/baitoru.sql
--
-- Types chosen to exercise the event encoding: bigint ids (JSON numbers),
-- numeric (string), timestamptz (RFC 3339 UTC), date, jsonb (embedded), text[]
-- (array), boolean, an enum (string) and free text that may be large enough
-- to be TOASTed (description).

DO $$
BEGIN
    CREATE TYPE application_status AS ENUM (
        'applied', 'screening', 'interview', 'offer', 'hired', 'rejected', 'withdrawn'
    );
EXCEPTION WHEN duplicate_object THEN NULL;
END
$$;

CREATE TABLE IF NOT EXISTS companies (
    company_id  bigserial PRIMARY KEY,
    name        text        NOT NULL,
    name_kana   text,
    prefecture  text        NOT NULL,
    city        text,
    phone       text,
    website     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS job_postings (
    posting_id      bigserial PRIMARY KEY,
    company_id      bigint        NOT NULL REFERENCES companies (company_id),
    title           text          NOT NULL,
    description     text          NOT NULL DEFAULT '',
    employment_type text          NOT NULL
        CHECK (employment_type IN ('part_time', 'full_time', 'contract', 'temporary', 'dispatch')),
    wage            numeric(10,2) NOT NULL CHECK (wage >= 0),
    wage_unit       text          NOT NULL DEFAULT 'hour'
        CHECK (wage_unit IN ('hour', 'day', 'month')),
    conditions      jsonb         NOT NULL DEFAULT '{}',
    tags            text[]        NOT NULL DEFAULT '{}',
    location        text,
    published       boolean       NOT NULL DEFAULT false,
    opens_on        date,
    created_at      timestamptz   NOT NULL DEFAULT now(),
    updated_at      timestamptz   NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS job_postings_company_id_idx ON job_postings (company_id);

-- applications carries personal data (name, e-mail, phone) that the shipped
-- config.yaml deliberately does not publish.
CREATE TABLE IF NOT EXISTS applications (
    application_id  bigserial PRIMARY KEY,
    company_id      bigint             NOT NULL,
    posting_id      bigint             NOT NULL,
    applicant_name  text               NOT NULL,
    applicant_email text               NOT NULL,
    applicant_phone text,
    answers         jsonb              NOT NULL DEFAULT '{}',
    status          application_status NOT NULL DEFAULT 'applied',
    source          text               NOT NULL DEFAULT 'web',
    applied_at      timestamptz        NOT NULL DEFAULT now(),
    updated_at      timestamptz        NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS applications_company_id_idx ON applications (company_id);
CREATE INDEX IF NOT EXISTS applications_posting_id_idx ON applications (posting_id);
