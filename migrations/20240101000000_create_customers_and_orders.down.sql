-- Description: Drop customers and orders

DROP TABLE orders;
DROP TABLE customers;
