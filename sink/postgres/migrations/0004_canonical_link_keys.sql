-- Link keys in JSON number syntax are compared by value, in canonical text
-- (7, 7.0, 7e0 and "7.0" are the key "7"; see sink.CanonicalKey): rewrite
-- keys stored in another form. Of active links of one account that become
-- the same pair, the oldest stays and the others are stopped (they pushed
-- the same events to the same account twice).
CREATE TEMPORARY TABLE link_canonical ON COMMIT DROP AS
SELECT id, trim_scale(link_key::numeric)::text AS link_key
FROM links
WHERE link_key ~ '^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,3})?$';

DELETE FROM link_canonical c USING links l
WHERE c.id = l.id AND (c.link_key = l.link_key OR octet_length(c.link_key) > 256);

UPDATE links l SET status = 'stopped', ended_at = now()
FROM (SELECT l.id, row_number() OVER (PARTITION BY l.kobot_account, coalesce(c.link_key, l.link_key) ORDER BY l.id) AS n
      FROM links l LEFT JOIN link_canonical c USING (id)
      WHERE l.status = 'active') d
WHERE l.id = d.id AND d.n > 1;

UPDATE links l SET link_key = c.link_key FROM link_canonical c WHERE l.id = c.id;
