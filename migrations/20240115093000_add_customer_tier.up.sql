-- Description: Add a loyalty tier to customers, backfilled from their order totals
-- Estimated duration: about 1 minute per million customers

-- Nullable, no default: a catalog-only change.
ALTER TABLE customers ADD COLUMN tier text;

-- New customers get a tier from now on; existing rows are backfilled below.
ALTER TABLE customers ALTER COLUMN tier SET DEFAULT 'bronze';

-- NOT VALID: checks new writes at once without scanning the table under a lock;
-- the next migration validates it with a lock that blocks no one.
ALTER TABLE customers
    ADD CONSTRAINT customers_tier_check CHECK (tier IN ('bronze', 'silver', 'gold')) NOT VALID;

-- lockgate runs this in key ranges of customers.id, one short transaction per batch,
-- with a checkpoint after each, so it resumes where it stopped.
-- lockgate:batch size=10000 key=id target=250ms
UPDATE customers
SET tier = (
    SELECT CASE
               WHEN coalesce(sum(o.total_cents), 0) >= 100000 THEN 'gold'
               WHEN coalesce(sum(o.total_cents), 0) >= 20000 THEN 'silver'
               ELSE 'bronze'
           END
    FROM orders AS o
    WHERE o.customer_id = customers.id
);
