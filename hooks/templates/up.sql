-- Description: {description}
-- Estimated duration: 1m
--
-- lockgate runs this file in one transaction with lock_timeout and statement_timeout set,
-- so a blocked lock fails fast and is retried instead of queueing every query behind it.
-- Safe patterns (lockgate lint explains each):
--   * new constraints: ADD CONSTRAINT ... NOT VALID here, VALIDATE CONSTRAINT in a later migration;
--   * indexes: CREATE INDEX CONCURRENTLY in a file of its own marked -- lockgate:no-transaction;
--   * backfills: a plain full-table UPDATE right under -- lockgate:batch size=10000 key=id target=100ms
--     (add workers=2 to run two key ranges at once where the server has the CPU to spare);
--   * a longer lock wait or statement for this migration only: -- lockgate:timeout lock=5s statement=30m.

-- Pre-check: stop before changing anything when the database is not what this migration expects.
DO $$
BEGIN
  IF current_setting('server_version_num')::int < 120000 THEN
    RAISE EXCEPTION '{name}: needs PostgreSQL 12 or later';
  END IF;
END $$;

-- Write the change here.
