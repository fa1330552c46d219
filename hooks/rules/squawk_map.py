"""Every squawk rule, and what lockgate does about it.

A squawk rule is covered when a lockgate rule names it in its `squawk` attribute; the ones no
rule covers are listed in NOT_COVERED with the reason. `coverage()` merges both, and the tests
require that every squawk rule is in exactly one of the two. The coverage benchmark
(bench/lint) reads this module.
"""

from __future__ import annotations

# squawk 2.70's rules (76; 50 on by default).
SQUAWK_RULES: tuple[str, ...] = (
    "adding-field-with-default", "adding-foreign-key-constraint", "adding-not-nullable-field",
    "adding-required-field", "adding-serial-primary-key-field", "ban-add-column", "ban-add-composite-attribute",
    "ban-add-enum-value", "ban-alter-database-options", "ban-alter-domain-with-add-constraint",
    "ban-alter-extension", "ban-alter-function-options", "ban-alter-generated-expression", "ban-alter-identity",
    "ban-alter-policy-condition", "ban-alter-policy-roles", "ban-alter-role-options",
    "ban-alter-row-level-security", "ban-alter-sequence-values", "ban-alter-system-options",
    "ban-alter-view-options", "ban-char-field", "ban-concurrent-index-creation-in-transaction",
    "ban-create-domain-with-constraint", "ban-create-policy", "ban-detach-inheritance", "ban-disable-trigger",
    "ban-drop-column", "ban-drop-constraint", "ban-drop-database", "ban-drop-default", "ban-drop-domain",
    "ban-drop-extension", "ban-drop-function", "ban-drop-generated-expression", "ban-drop-index",
    "ban-drop-not-null", "ban-drop-policy", "ban-drop-schema", "ban-drop-sequence", "ban-drop-table",
    "ban-drop-trigger", "ban-drop-type", "ban-drop-view", "ban-duplicate-column-assignments",
    "ban-new-write-restriction", "ban-replace-view-function", "ban-replica-identity", "ban-revoke",
    "ban-set-default", "ban-set-schema", "ban-truncate-cascade", "ban-uncommitted-transaction",
    "changing-column-type", "constraint-missing-not-valid", "disallowed-unique-constraint", "identifier-too-long",
    "prefer-bigint-over-int", "prefer-bigint-over-smallint", "prefer-identity", "prefer-repack",
    "prefer-robust-stmts", "prefer-text-field", "prefer-timestamp-tz", "renaming-column", "renaming-object",
    "renaming-table", "require-concurrent-index-creation", "require-concurrent-index-deletion",
    "require-concurrent-partition-detach", "require-concurrent-reindex", "require-enum-value-ordering",
    "require-lock-timeout", "require-statement-timeout", "require-table-schema", "transaction-nesting",
)

# squawk rules lockgate deliberately has no rule for, and why.
NOT_COVERED: dict[str, str] = {
    "require-lock-timeout": (
        "lockgate's engine sets lock_timeout itself (configurable, overridable per migration) and retries "
        "the statement on a lock timeout, so a migration need not set it"
    ),
    "require-statement-timeout": (
        "lockgate's engine sets statement_timeout itself (configurable, overridable per migration), so a "
        "migration need not set it"
    ),
    "prefer-robust-stmts": (
        "the engine runs each migration once, recorded in its ledger, and as one transaction whenever it can, "
        "so a failed one leaves nothing behind and runs again from scratch; IF [NOT] EXISTS would buy nothing "
        "and would hide drift (an object that already exists with another definition is silently kept). The "
        "one place it matters, a down file undoing a non-transactional up of several steps that stopped part "
        "way, needs the up and the down together: a `lockgate check` concern, not a per-statement rule"
    ),
    "require-table-schema": (
        "a migration set targets one database and runs with its connection's search_path; unqualified names "
        "are the norm, and the baseline snapshot records the schema each table resolved to (squawk: off by "
        "default)"
    ),
    "ban-add-column": (
        "adding a nullable column is the expand step of nearly every change and is catalog-only; its hazardous "
        "forms are rules of their own: NOT NULL without a default (LG508), rewriting defaults (LG3xx), key "
        "types (LG701); squawk: off by default"
    ),
    "ban-add-enum-value": (
        "adding a value is how an enum grows (the expand step); using the new value in the same transaction, "
        "which fails, is LG604; squawk: off by default"
    ),
    "require-enum-value-ordering": (
        "appending a value (no BEFORE/AFTER) is right whenever the enum's sort order carries no meaning, the "
        "common case; whether ORDER BY on the column must place it elsewhere is app intent the linter cannot see"
    ),
    "ban-drop-constraint": (
        "dropping a constraint loses no data and breaks no query, and its ACCESS EXCLUSIVE lock is brief and "
        "bounded by the engine's lock_timeout; down files routinely drop what their up added or validated"
    ),
    "ban-drop-index": (
        "dropping an index loses no data and breaks no query; its lock (DROP INDEX without CONCURRENTLY) is "
        "LG102, and whether a plan still needs the index is not visible without the database; squawk: off by "
        "default"
    ),
    "ban-drop-not-null": (
        "DROP NOT NULL is the expand step of retiring a column: catalog-only, no scan, nothing breaks; the "
        "hazard squawk names (a rollback's SET NOT NULL scans, and fails once NULLs were written) belongs to "
        "the down file and is exercised by verify-rollback"
    ),
    "ban-set-default": (
        "SET DEFAULT is catalog-only and affects only rows inserted afterwards, which is what the author asked "
        "for; the rewriting default forms are LG3xx; squawk: off by default"
    ),
    "ban-new-write-restriction": (
        "adding a constraint is the point of most migrations; its lock and scan hazards are rules (LG201, "
        "LG202, LG204), and whether old app versions still write values it rejects is deploy ordering the "
        "linter cannot judge without the app's code; squawk: off by default"
    ),
    "ban-replace-view-function": (
        "CREATE OR REPLACE is how views and functions change, and a replace cannot be told from a first "
        "create without the catalog; PostgreSQL itself refuses replacements that drop view columns or change "
        "a return type, and the required down file restores the old definition (proven by verify-rollback); "
        "squawk: off by default"
    ),
}


def coverage(covering: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...] | str]:
    """Each squawk rule → the lockgate codes covering it, or the reason none does.

    `covering` maps squawk rule → lockgate codes, built from the rules' `squawk` attributes
    (bench/lint's `covering_rules(all_rules())`).
    """
    return {name: covering.get(name) or NOT_COVERED.get(name, "") for name in SQUAWK_RULES}
