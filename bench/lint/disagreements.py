"""Why lockgate and squawk differ on squawk's own cases, one reviewed reason per case.

Keyed by squawk's test name (or the case's note when it has none). A disagreement with no entry
here is reported as unexplained, so a rule change that opens a new gap shows up in the benchmark
instead of hiding. Facts about PostgreSQL are the measured ones (reference/postgres-locks.md) or
were checked against a real server.
"""

from __future__ import annotations

_OWN_TRANSACTION = (
    "on purpose: lockgate's engine runs the file in its own transaction, so a BEGIN/COMMIT written in it "
    "would end that transaction early; LG603 flags any explicit transaction control (squawk assumes a runner "
    "that does not wrap the file)"
)
_SQUAWK_IGNORE = (
    "squawk honours its `-- squawk-ignore` comment; lockgate's own form is `-- lockgate:ignore LG502 -- reason` "
    "(a reason is required), so the squawk comment silences nothing"
)
_VALIDATE_SAME_TX = (
    "on purpose: lockgate runs the file as one transaction, so VALIDATE right after ADD … NOT VALID scans "
    "while the ADD's lock is still held and NOT VALID buys nothing; LG203 asks for VALIDATE in the next "
    "migration (squawk assumes autocommit between statements)"
)
_TRUNCATE = (
    "on purpose: LG505 flags every TRUNCATE of an existing table (all rows gone, ACCESS EXCLUSIVE), not only "
    "TRUNCATE … CASCADE"
)
_INT_ARRAY = (
    "on purpose: LG701 flags integer key columns (id, *_id), which run out of values and then need a "
    "rewrite; an int[] column of values is not a key"
)
_REPACK = (
    "on purpose: squawk suggests PostgreSQL 19's REPACK and so only flags from 19; lockgate flags the ACCESS "
    "EXCLUSIVE rewrite on every version and points to pg_repack / pg_squeeze"
)

REASONS: dict[str, str] = {
    "adding_field_with_default::default_random_with_args_err": (
        "`now(123)` does not exist (now() takes no argument); lockgate reads it as now(), which is stable, and "
        "a stable default adds no rewrite from PostgreSQL 11"
    ),
    "adding_field_with_default::docs_example_error_on_pg_11": (
        "version-aware: from PostgreSQL 11 a non-volatile DEFAULT is stored in the catalog and nothing is "
        "rewritten (measured on PG 10–18); squawk still flags it at 11"
    ),
    "adding_foreign_key_constraint::add_column_references_lock": (
        "on purpose: a column added with REFERENCES is all NULL, so PostgreSQL checks no row (no scan, "
        "measured); the parent's SHARE ROW EXCLUSIVE lasts only for the catalog change"
    ),
    "ban_char_field::fix_char_with_length": (
        "PostgreSQL rejects these itself (`type modifier is not allowed for type \"char\"`, `type \"character\" "
        "does not exist`, checked on PG 15): quoted \"char\" is the one-byte internal type, so there is no "
        "char(n) column to warn about"
    ),
    "ban_concurrent_index_creation_in_transaction::assuming_in_transaction_err": (
        "on purpose: lockgate's engine sees CREATE INDEX CONCURRENTLY and runs that file statement by statement "
        "in autocommit, so it never lands in a transaction; squawk's assume_in_transaction models a runner "
        "that always wraps the file"
    ),
    "README/cli.md squawk-ignore example (line-level ignore on the preceding line)": _SQUAWK_IGNORE,
    "README/cli.md squawk-ignore-file example": _SQUAWK_IGNORE,
    "README/cli.md multi-rule squawk-ignore example": _SQUAWK_IGNORE,
    "ban_duplicate_column_assignments::create_foreign_table_err": (
        "gap: LG707 does not read CREATE FOREIGN TABLE; PostgreSQL rejects the statement anyway "
        "(`column \"a\" specified more than once`)"
    ),
    "ban_truncate_cascade::ok": _TRUNCATE,
    "docs ban-truncate-cascade solution": _TRUNCATE,
    "ban_uncommitted_transaction::committed_transaction_ok": _OWN_TRANSACTION,
    "ban_uncommitted_transaction::rolled_back_transaction_ok": _OWN_TRANSACTION,
    "transaction_nesting::no_nesting_ok": _OWN_TRANSACTION,
    "transaction_nesting::no_nesting_repeated_ok": _OWN_TRANSACTION,
    "transaction_nesting::squawk_disable_assume_in_transaction_allows_begin_commit": _OWN_TRANSACTION,
    "constraint_missing_not_valid::adding_fk_not_valid_ok": _VALIDATE_SAME_TX,
    "constraint_missing_not_valid::adding_check_constraint_ok": _VALIDATE_SAME_TX,
    "identifier_too_long::drop_table_long_name_err": (
        "on purpose: LG706 flags a long name where it is declared (CREATE, RENAME); a DROP naming it is "
        "truncated the same way, so it drops exactly the object that was created"
    ),
    "prefer_bigint_over_int::fix_array_types": _INT_ARRAY,
    "prefer_bigint_over_smallint::fix_array_types": _INT_ARRAY,
    "prefer_repack::cluster_below_pg19_ok": _REPACK,
    "prefer_repack::vacuum_full_below_pg19_ok": _REPACK,
}
