-- Description: The tables exist and are empty of surprises

-- Gate: both tables exist.
SELECT to_regclass('customers') IS NOT NULL AND to_regclass('orders') IS NOT NULL AS tables_exist;

-- Gate: orders reference customers.
SELECT EXISTS (
    SELECT 1 FROM pg_constraint
    WHERE conrelid = 'orders'::regclass AND contype = 'f' AND confrelid = 'customers'::regclass
) AS orders_reference_customers;
