-- Description: undo {name}
--
-- Undo every change of {name}.up.sql, last change first, so the schema is exactly as
-- before the up. `lockgate check` compares the two files; `lockgate verify-rollback` proves it.

-- Write the undo here.
