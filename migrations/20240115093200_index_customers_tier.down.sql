-- Description: Drop the tier index without blocking writes
-- lockgate:no-transaction

DROP INDEX CONCURRENTLY customers_tier_idx;
