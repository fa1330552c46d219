-- Description: Index customers by tier for the loyalty dashboard
-- Estimated duration: two scans of customers; writes continue meanwhile
-- lockgate:no-transaction

CREATE INDEX CONCURRENTLY customers_tier_idx ON customers (tier);
