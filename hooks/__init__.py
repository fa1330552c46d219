"""The static side of lockgate: reads migration files, needs no database."""
