-- Description: Return the tier CHECK to NOT VALID

-- A validated constraint cannot be marked unvalidated in place: re-create it NOT VALID.
ALTER TABLE customers DROP CONSTRAINT customers_tier_check;
ALTER TABLE customers
    ADD CONSTRAINT customers_tier_check CHECK (tier IN ('bronze', 'silver', 'gold')) NOT VALID;
