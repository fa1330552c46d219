-- Description: validation gates for {name}
--
-- Runs after the up. A gate fails when a statement raises, or when a query's first row has a
-- first column that is false; lockgate then rolls the migration back. migration_baseline holds
-- the row counts captured just before the up.

-- Gate: the up changed no table's row count.
SELECT coalesce(bool_and(
         b.row_count = (xpath('/row/n/text()',
           query_to_xml(format('SELECT count(*) AS n FROM %s', b.table_name), false, true, '')))[1]::text::bigint
       ), true) AS row_counts_unchanged
FROM migration_baseline AS b;
