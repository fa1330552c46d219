-- Description: The index was built completely

-- Gate: a failed CONCURRENTLY build leaves an INVALID index behind; this catches it.
SELECT indisvalid AS tier_index_valid
FROM pg_index
WHERE indexrelid = 'customers_tier_idx'::regclass;
