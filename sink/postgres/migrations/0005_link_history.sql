-- A link's history: the rows that already exist of each table of a
-- sink.links rule with history, whose link field equals the link key. The
-- connector re-sends them as read events, and the sink pushes those to this
-- link only. A row is written with its link; the sink then inserts a start
-- request into Baitoru's database (baitoru_cdc.backfill_requests, as the
-- requester role) and sets requested_at. The backfill id is the request's
-- key there: asking twice is one backfill.
CREATE TABLE link_history (
    link_id      bigint      NOT NULL REFERENCES links (id),
    table_name   text        NOT NULL,
    key_field    text        NOT NULL,
    backfill_id  text        NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    requested_at timestamptz,
    PRIMARY KEY (link_id, table_name)
);

-- The requests Baitoru's database has not taken yet, oldest first.
CREATE INDEX link_history_pending ON link_history (created_at) WHERE requested_at IS NULL;
