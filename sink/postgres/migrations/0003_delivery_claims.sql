-- Claims: before pushing an event to a link, a sink claims the pair until
-- claimed_until. Another receive of the same event (a re-sent duplicate
-- handled by another consumer at the same moment) finds the claim and
-- leaves its message for redelivery instead of pushing it a second time.
-- A claim of a sink that died expires; the outcome row clears it.
ALTER TABLE deliveries ADD COLUMN claimed_until timestamptz;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'retry', 'rejected'));
