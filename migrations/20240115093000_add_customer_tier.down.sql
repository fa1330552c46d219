-- Description: Remove the customer tier

ALTER TABLE customers DROP CONSTRAINT customers_tier_check;
ALTER TABLE customers DROP COLUMN tier;
