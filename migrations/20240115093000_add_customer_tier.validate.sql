-- Description: Every customer has a valid tier and no customer was lost

-- Gate: the backfill reached every row.
SELECT count(*) = 0 AS every_customer_has_a_tier FROM customers WHERE tier IS NULL;

-- Gate: the row count is what it was before the migration.
SELECT (SELECT count(*) FROM customers)
       = (SELECT row_count FROM migration_baseline WHERE table_name = 'customers') AS customer_count_unchanged;

-- Gate: tiers agree with order totals (raises on the first mismatch).
DO $$
DECLARE
    wrong bigint;
BEGIN
    SELECT count(*) INTO wrong
    FROM customers AS c
    LEFT JOIN (SELECT customer_id, sum(total_cents) AS total FROM orders GROUP BY customer_id) AS t
           ON t.customer_id = c.id
    WHERE c.tier IS DISTINCT FROM CASE
              WHEN coalesce(t.total, 0) >= 100000 THEN 'gold'
              WHEN coalesce(t.total, 0) >= 20000 THEN 'silver'
              ELSE 'bronze'
          END;
    IF wrong > 0 THEN
        RAISE EXCEPTION '% customers have a tier that does not match their orders', wrong;
    END IF;
END $$;

-- Distribution, recorded in the report (not a gate).
SELECT tier, count(*) AS customers FROM customers GROUP BY tier ORDER BY tier;
