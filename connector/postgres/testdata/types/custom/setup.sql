-- Types Resolve loads from pg_type: enums, domains (also over enums, arrays
-- and other domains), arrays of those, a composite, citext and ranges.
CREATE EXTENSION citext;
CREATE TYPE application_status AS ENUM ('applied', 'in review', 'hired', 'with "quotes"', 'NULL', '');
CREATE DOMAIN positive_int AS int4 CHECK (VALUE > 0);
CREATE DOMAIN small_positive AS positive_int CHECK (VALUE < 100);
CREATE DOMAIN status_domain AS application_status;
CREATE DOMAIN email AS citext;
CREATE DOMAIN tags AS text[];
CREATE DOMAIN payload AS jsonb;
CREATE DOMAIN stamp AS timestamptz;
CREATE TYPE address AS (city text, zip int4);
CREATE TYPE floatrange AS RANGE (subtype = float8);
CREATE TABLE t (
    id        int4 PRIMARY KEY,
    c_enum    application_status,
    c_enums   application_status[],
    c_posint  positive_int,
    c_posints positive_int[],
    c_small   small_positive,
    c_sdom    status_domain,
    c_sdoms   status_domain[],
    c_citext  citext,
    c_email   email,
    c_tags    tags,
    c_payload payload,
    c_stamp   stamp,
    c_addr    address,
    c_addrs   address[],
    c_frange  floatrange
);
INSERT INTO t VALUES
(1, 'applied', '{applied,"in review",NULL}', 42, '{1,2,NULL}', 99, 'hired', '{hired}', 'MiXeD Case',
 'Taro@Example.JP', '{a,"b c"}', '{"a": [1, 2]}', '2026-11-25 12:00:00+09', ROW('東京', 1000001),
 ARRAY[ROW('Osaka', 5300001)::address, ROW('a "quoted", city', NULL)::address], '[1.5,2.5)'),
(2, 'with "quotes"', ARRAY['NULL', '', 'with "quotes"']::application_status[], 1, '{}', 1, 'NULL',
 ARRAY['', NULL]::status_domain[], '', '', '{}', 'null', 'infinity', ROW(NULL, NULL), '{}', 'empty'),
(3, '', '{}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
