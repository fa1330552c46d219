-- The seed's UPDATE … FROM form as one plain statement, fixed like the loop: order totals
-- left-joined, so customers without orders get 'bronze' instead of staying NULL.
UPDATE customers
SET tier = CASE
               WHEN coalesce(t.total, 0) >= 100000 THEN 'gold'
               WHEN coalesce(t.total, 0) >= 20000 THEN 'silver'
               ELSE 'bronze'
           END
FROM customers AS c
LEFT JOIN (SELECT customer_id, sum(total_cents) AS total FROM orders GROUP BY customer_id) AS t
       ON t.customer_id = c.id
WHERE c.id = customers.id;
