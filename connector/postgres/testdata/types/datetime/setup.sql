-- Dates and times, incl. infinity, BC, years beyond 9999 and fractional
-- seconds; timestamptz values are written with several offsets.
CREATE TABLE t (
    id     int4 PRIMARY KEY,
    c_date date,
    c_ts   timestamp,
    c_tstz timestamptz,
    c_ts0  timestamp(0),
    c_tstz3 timestamptz(3),
    c_time time,
    c_timetz timetz,
    c_interval interval
);
INSERT INTO t VALUES
(1, '2026-11-25', '2026-11-25 03:00:00.123456', '2026-11-25 03:00:00.123456+00', '2026-11-25 03:00:00.7',
 '2026-11-25 12:00:00.1239+09', '03:00:00.123456', '03:00:00+09', '1 year 2 months 3 days 4 hours 5 minutes 6 seconds'),
(2, 'infinity', 'infinity', 'infinity', '-infinity', '-infinity', '24:00:00', '00:00:00-15:59', '-1 year -2 months +3 days -04:05:06.5'),
(3, '0044-03-15 BC', '0044-03-15 12:00:00 BC', '0044-03-15 00:00:00+00 BC', '4713-01-01 00:00:00 BC',
 '4713-01-01 00:00:00+00 BC', '00:00:00', '23:59:59.999999+15:59', '0'),
(4, '5874897-12-31', '294276-12-31 23:59:59.999999', '294276-12-31 23:59:59.999999+00', '10000-01-01',
 '9999-12-31 23:30:00-01', '12:34:56', '12:34:56.5-05:30', '178000000 years'),
(5, '0001-01-01', '0001-01-01 00:00:00', '0001-01-01 00:00:00+09', '2024-02-29 23:59:59',
 '2024-03-01 00:30:00+01', '00:00:00.000001', '00:00:00.000001+00', '0.000001 seconds'),
(6, '-infinity', '-infinity', '-infinity', NULL, NULL, NULL, NULL, NULL),
(7, '1970-01-01', '1970-01-01 00:00:00', '1969-12-31 19:00:00.5-05', '1999-12-31 23:59:59.999999',
 '2000-01-01 05:30:15+05:30:15', '13:00', '13:00+05:30', '-178000000 years'),
(8, '2000-02-29', '1900-02-28 23:59:59.999999', '1900-03-01 00:00:00+15:59:59', NULL, NULL, NULL, NULL, '1 day -1 second');
