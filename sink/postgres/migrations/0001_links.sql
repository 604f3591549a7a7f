-- Links between Kobot accounts and Baitoru link keys (e.g. company ids).
-- A link is never deleted: stopping it sets status = 'stopped' and ended_at.
CREATE TABLE links (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kobot_account text        NOT NULL CHECK (kobot_account <> '' AND octet_length(kobot_account) <= 256),
    link_key      text        NOT NULL CHECK (link_key <> '' AND octet_length(link_key) <= 256),
    status        text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'stopped')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    CHECK ((status = 'active') = (ended_at IS NULL))
);

-- At most one active link per (account, key): what makes "start" idempotent.
CREATE UNIQUE INDEX links_active_pair ON links (kobot_account, link_key) WHERE status = 'active';
-- The link cache loads active links by key.
CREATE INDEX links_active_key ON links (link_key) WHERE status = 'active';
-- GET /v1/links?account= and ?key= page by id.
CREATE INDEX links_account_id ON links (kobot_account, id);
CREATE INDEX links_key_id ON links (link_key, id);

-- Every change of a link notifies the sinks (LISTEN baitoru_cdc_links) with
-- the link key, so their caches reload that key; an empty payload (TRUNCATE)
-- reloads everything.
CREATE FUNCTION links_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('baitoru_cdc_links', '');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('baitoru_cdc_links', OLD.link_key);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND (TG_OP = 'INSERT' OR NEW.link_key IS DISTINCT FROM OLD.link_key) THEN
        PERFORM pg_notify('baitoru_cdc_links', NEW.link_key);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER links_notify AFTER INSERT OR UPDATE OR DELETE ON links
    FOR EACH ROW EXECUTE FUNCTION links_notify();
CREATE TRIGGER links_notify_truncate AFTER TRUNCATE ON links
    FOR EACH STATEMENT EXECUTE FUNCTION links_notify();
