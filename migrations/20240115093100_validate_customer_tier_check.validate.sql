-- Description: The tier CHECK is validated

-- Gate: PostgreSQL now trusts the constraint for every row.
SELECT convalidated AS tier_check_validated
FROM pg_constraint
WHERE conrelid = 'customers'::regclass AND conname = 'customers_tier_check';
