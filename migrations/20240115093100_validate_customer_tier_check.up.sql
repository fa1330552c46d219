-- Description: Validate the tier CHECK added NOT VALID by the previous migration
-- Estimated duration: one scan of customers; takes SHARE UPDATE EXCLUSIVE, blocks no reads or writes

ALTER TABLE customers VALIDATE CONSTRAINT customers_tier_check;
