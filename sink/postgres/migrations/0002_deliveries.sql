-- The delivery log: one row per (event, link) push. A row with status
-- 'delivered' means Kobot answered 2xx, and the sink does not push that
-- event to that link again when SQS redelivers the message.
CREATE TABLE deliveries (
    event_id     text             NOT NULL,
    link_id      bigint           NOT NULL REFERENCES links (id),
    status       text             NOT NULL CHECK (status IN ('delivered', 'retry', 'rejected')),
    attempts     integer          NOT NULL CHECK (attempts >= 0),
    http_status  integer,
    last_error   text,
    latency_ms   double precision NOT NULL DEFAULT 0,
    first_at     timestamptz      NOT NULL DEFAULT now(),
    updated_at   timestamptz      NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    PRIMARY KEY (event_id, link_id)
);

-- Pruning old rows (DELETE ... WHERE updated_at < now() - interval '14 days').
CREATE INDEX deliveries_updated_at ON deliveries (updated_at);
