"""Changes a schema migration should not make quietly: security, server settings, replication.

Each is legitimate sometimes, none blocks a table for long, and each changes behaviour beyond
the schema: who may read rows, how a function runs, what replicas and change-data consumers
receive. squawk has most of these off by default; lockgate reports them as warnings so the
reviewer sees them, and an `ignore` with a reason records that someone did. Objects the same
migration created are new, so changing them is not flagged.
"""

from __future__ import annotations

from collections.abc import Iterator

from lockgate.hooks.rules._nodes import (
    ADDS_COLUMNS,
    alter_cmds,
    created_here,
    drop_targets,
    is_new_column,
    table_dropped_later,
    table_name,
)
from lockgate.hooks.rules.base import UP_ONLY, Example, Hit, Rule, Severity
from lockgate.hooks.rules.context import Context, name_key, relation_key
from lockgate.hooks.sqlmodel import Node, Statement


def _option_names(options: list[Node]) -> list[str]:
    return [str(o.get("DefElem", {}).get("defname", "")) for o in options]


class BanAlterSettings(Rule):
    """`ALTER SYSTEM` and `ALTER DATABASE … SET` change settings outside the schema, for everyone.

    `ALTER SYSTEM` writes `postgresql.auto.conf` for the whole server (every database), cannot
    run in a transaction block, and is not undone by a rollback. `ALTER DATABASE … SET` /
    `RESET` / `WITH …` changes the defaults of every new session of the database (search_path,
    timeouts, connection limit): running apps pick the change up as they reconnect, and a
    down file must remember the old value to restore it.

    Safe alternative: keep server and database settings in configuration management (the
    cluster's config, the Helm chart or operator), reviewed as such; set per-statement values
    with `SET LOCAL` inside the migration when a statement needs them, and the lock and statement
    timeouts of one migration with `-- lockgate:timeout lock=5s statement=30m` in its up file.
    """

    code = "LG801"
    name = "ban-alter-settings"
    severity = Severity.WARNING
    summary = "ALTER SYSTEM / ALTER DATABASE settings in a migration"
    kinds = frozenset({"AlterSystemStmt", "AlterDatabaseSetStmt", "AlterDatabaseStmt"})
    squawk = ("ban-alter-system-options", "ban-alter-database-options")
    bad = (Example("ALTER DATABASE shop SET statement_timeout = '5s';"),)
    good = (Example("SET LOCAL statement_timeout = '5min';"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        if stmt.kind == "AlterSystemStmt":
            yield "ALTER SYSTEM changes the whole server's config, outside any transaction; use config management"
        else:
            yield (f"ALTER DATABASE {stmt.node.get('dbname', '')} changes defaults of every new session; "
                   f"keep database settings in config management")


class BanAlterRole(Rule):
    """`ALTER ROLE` changes cluster-wide accounts, not this database's schema.

    Roles belong to the whole server: a migration that changes `LOGIN`, `BYPASSRLS`, a password
    or a role's default settings affects every database and every app using the role, and
    no down file can restore a password it never knew. A migration that turns off the login of
    the app's role is an outage.

    Safe alternative: manage roles and their settings where credentials are managed (the
    operator, Terraform, the secrets pipeline), not in the migration set.
    """

    code = "LG802"
    name = "ban-alter-role"
    severity = Severity.WARNING
    summary = "ALTER ROLE/USER options or settings in a migration"
    kinds = frozenset({"AlterRoleStmt", "AlterRoleSetStmt"})
    squawk = ("ban-alter-role-options",)
    bad = (Example("ALTER ROLE reporting NOLOGIN;"),)
    good = (Example("GRANT SELECT ON orders TO reporting;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        # ALTER GROUP … ADD/DROP USER is membership, not options (a DROP is ban-revoke's).
        if stmt.kind == "AlterRoleStmt" and _option_names(node.get("options", [])) == ["rolemembers"]:
            return
        role = node.get("role", {}).get("rolename", "")
        yield f"ALTER ROLE {role} changes a server-wide account for every database; manage roles outside migrations"


class BanRevoke(Rule):
    """`REVOKE` takes privileges away from roles the running app may be using.

    The moment the migration commits, queries of the role that lost the privilege fail with
    `permission denied`. Unlike most schema changes nothing in the app's code mentions the
    privilege, so reviews miss which code path needed it.

    Safe alternative: confirm no client of the role still needs the privilege (pg_stat_statements,
    logs) and revoke it in a migration of its own, with
    `-- lockgate:ignore ban-revoke -- <who used it, and why they no longer do>`. Revoking
    privileges on an object the same migration created is not flagged (closing defaults on a new
    table is good practice).
    """

    code = "LG803"
    name = "ban-revoke"
    severity = Severity.WARNING
    summary = "REVOKE of privileges or role membership"
    kinds = frozenset({"GrantStmt", "GrantRoleStmt", "AlterDefaultPrivilegesStmt", "AlterRoleStmt"})
    squawk = ("ban-revoke",)
    bad = (Example("REVOKE UPDATE ON customers FROM support;"), Example("REVOKE billing_admin FROM alice;"))
    good = (
        Example("GRANT SELECT ON customers TO support;"),
        Example("CREATE TABLE audit_log (id bigint PRIMARY KEY, entry text);\nREVOKE ALL ON audit_log FROM PUBLIC;"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        if stmt.kind == "AlterRoleStmt":
            if node.get("action") == -1 and _option_names(node.get("options", [])) == ["rolemembers"]:
                yield "dropping members from a role revokes its privileges from them; running clients lose access"
            return
        grant = node.get("action", {}) if stmt.kind == "AlterDefaultPrivilegesStmt" else node
        if grant.get("is_grant"):
            return
        objects = [o.get("RangeVar") for o in grant.get("objects", []) if "RangeVar" in o]
        if objects and all(ctx.is_new(rv) for rv in objects):
            return
        yield "REVOKE takes privileges away from roles running code may use; queries fail with permission denied"


_RLS_COMMANDS = {
    "AT_EnableRowSecurity": "ENABLE ROW LEVEL SECURITY", "AT_DisableRowSecurity": "DISABLE ROW LEVEL SECURITY",
    "AT_ForceRowSecurity": "FORCE ROW LEVEL SECURITY", "AT_NoForceRowSecurity": "NO FORCE ROW LEVEL SECURITY",
}


class RowSecurityChange(Rule):
    """Policies and row-level security decide which rows each role sees; changing them is a security change.

    `ENABLE ROW LEVEL SECURITY` on a table without policies hides every row from every role but
    the owner; `CREATE`/`ALTER`/`DROP POLICY` widen or narrow what a role may read and write;
    `DISABLE` or `NO FORCE` turn the protection off. All take effect for running sessions as the
    migration commits, and nothing in the app's code shows it.

    Safe alternative: make such changes in a migration of their own, reviewed as a security
    change, with a validation file that checks what a representative role can see; mark each
    with `-- lockgate:ignore row-security-change -- <reviewed by …>`. Policies on a table the
    same migration created are not flagged.
    """

    code = "LG804"
    name = "row-security-change"
    severity = Severity.WARNING
    summary = "CREATE/ALTER/DROP POLICY or a row-level security switch on an existing table"
    kinds = frozenset({"CreatePolicyStmt", "AlterPolicyStmt", "DropStmt", "AlterTableStmt"})
    alter_commands = frozenset(_RLS_COMMANDS)
    squawk = (
        "ban-create-policy", "ban-alter-policy-condition", "ban-alter-policy-roles", "ban-drop-policy",
        "ban-alter-row-level-security",
    )
    bad = (
        Example("ALTER TABLE orders ENABLE ROW LEVEL SECURITY;"),
        Example("CREATE POLICY own_orders ON orders USING (customer_id = current_setting('app.customer')::bigint);"),
    )
    good = (
        Example("CREATE TABLE notes (id bigint PRIMARY KEY, owner text);\n"
                "ALTER TABLE notes ENABLE ROW LEVEL SECURITY;\n"
                "CREATE POLICY own_notes ON notes USING (owner = current_user);"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        if stmt.kind == "DropStmt":
            if node.get("removeType") == "OBJECT_POLICY":
                for key, written in drop_targets(node):
                    if not created_here(ctx, "OBJECT_POLICY", key):
                        yield f"DROP POLICY {written} changes which rows roles may see or write; review it as security"
            return
        if stmt.kind == "AlterTableStmt":
            if not ctx.is_new(node.get("relation", {})):
                for cmd in alter_cmds(node):
                    if cmd.get("subtype") in _RLS_COMMANDS:
                        yield (f"{_RLS_COMMANDS[cmd['subtype']]} on {table_name(node['relation'])} changes which rows "
                               f"every role sees; review it as a security change")
            return
        table = node.get("table", {})
        policy = f"{relation_key(table)}.{node.get('policy_name', '')}"
        if not created_here(ctx, "OBJECT_POLICY", policy):
            verb = "CREATE" if stmt.kind == "CreatePolicyStmt" else "ALTER"
            yield (f"{verb} POLICY {node.get('policy_name', '')} changes which rows of {table_name(table)} roles "
                   f"see or write; review it as a security change")


_TRIGGER_SWITCHES = frozenset({
    "AT_EnableTrig", "AT_DisableTrig", "AT_EnableAlwaysTrig", "AT_EnableReplicaTrig", "AT_EnableTrigAll",
    "AT_DisableTrigAll", "AT_EnableTrigUser", "AT_DisableTrigUser", "AT_EnableRule", "AT_DisableRule",
    "AT_EnableAlwaysRule", "AT_EnableReplicaRule",
})


class TriggerOrRuleChange(Rule):
    """Disabling, re-enabling or dropping a trigger or rule changes what every write does.

    A trigger keeps derived data, audit rows or invariants up to date; `DISABLE TRIGGER` (or
    `DROP TRIGGER`) stops that for every session, not just the migration's, and writes made
    meanwhile are never processed. The statements take SHARE ROW EXCLUSIVE (DROP: ACCESS
    EXCLUSIVE) on the table. `ENABLE REPLICA`/`ALWAYS` changes whether the trigger fires for
    replicated writes.

    Safe alternative: do not switch triggers off around a data change; if the trigger must not
    fire for a backfill, make the trigger skip it (a `current_setting('app.backfill', true)`
    check) rather than disable it for everyone. Drop a trigger only once nothing relies on what
    it maintains. Triggers of tables the same migration created are not flagged, nor those of a
    table the same file drops later (DROP TABLE takes its triggers with it; LG501 reports that).
    """

    code = "LG805"
    name = "trigger-or-rule-change"
    severity = Severity.WARNING
    summary = "ENABLE/DISABLE/DROP of a trigger or rule on an existing table"
    kinds = frozenset({"AlterTableStmt", "DropStmt"})
    alter_commands = _TRIGGER_SWITCHES
    squawk = ("ban-disable-trigger", "ban-drop-trigger")
    bad = (Example("ALTER TABLE orders DISABLE TRIGGER orders_audit;"), Example("DROP TRIGGER orders_audit ON orders;"))
    good = (
        Example("CREATE TRIGGER orders_audit AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION audit();\n"
                "DROP TRIGGER orders_audit ON orders;",
                note="a trigger the same migration created (as a down file would drop it)"),
        Example("DROP TRIGGER orders_audit ON orders;\nDROP TABLE orders;",
                note="the table goes too: LG501 reports the drop"),
    )

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        if stmt.kind == "DropStmt":
            object_type = node.get("removeType", "")
            if object_type in ("OBJECT_TRIGGER", "OBJECT_RULE"):
                word = "TRIGGER" if object_type == "OBJECT_TRIGGER" else "RULE"
                for key, written in drop_targets(node):
                    table = key.rpartition(".")[0]
                    if not created_here(ctx, object_type, key) and not table_dropped_later(ctx, stmt, table):
                        yield f"DROP {word} {written} stops what it does for every write; drop it once nothing needs it"
            return
        relation = node.get("relation", {})
        if ctx.is_new(relation) or table_dropped_later(ctx, stmt, relation_key(relation)):
            return
        for cmd in alter_cmds(node):
            if cmd.get("subtype") in _TRIGGER_SWITCHES:
                what = cmd.get("name") or "triggers"
                yield (f"switching {what} on {table_name(relation)} changes what every session's writes do, not just "
                       f"the migration's; make the trigger skip the backfill instead")


class BanAlterExtension(Rule):
    """`ALTER EXTENSION … UPDATE` runs the extension's own upgrade script, with its own locks.

    An upgrade script may rewrite types, re-create functions and operators, and take ACCESS
    EXCLUSIVE on tables using them; none of it is visible in the migration, and most extensions
    ship no downgrade path, so the down file cannot undo it. Dropping a member out of an
    extension (`ALTER EXTENSION … DROP`) leaves an object the extension no longer manages.

    Safe alternative: upgrade extensions as an operational change, following the extension's
    release notes, after testing the upgrade on a copy of production.
    """

    code = "LG806"
    name = "ban-alter-extension"
    severity = Severity.WARNING
    summary = "ALTER EXTENSION UPDATE / DROP member"
    kinds = frozenset({"AlterExtensionStmt", "AlterExtensionContentsStmt"})
    squawk = ("ban-alter-extension",)
    bad = (Example("ALTER EXTENSION postgis UPDATE TO '3.4.0';"),)
    good = (Example("CREATE EXTENSION IF NOT EXISTS pg_trgm;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        name = stmt.node.get("extname", "")
        if ("extension", name) in ctx.new_objects:
            return
        if stmt.kind == "AlterExtensionStmt":
            yield f"ALTER EXTENSION {name} UPDATE runs the extension's upgrade script, unseen and usually one-way"
        elif stmt.node.get("action") == -1:
            yield f"ALTER EXTENSION {name} DROP leaves an object the extension no longer manages"


class BanAlterSecurityOptions(Rule):
    """Changing how a function or view executes changes what it may read, for every caller.

    `SECURITY DEFINER` makes a function run with its owner's privileges (and, without a pinned
    `search_path`, open to hijacking by objects in a schema the caller controls); `SET` /
    `RESET` on a function changes its configuration (search_path, timeouts) for every call.
    `ALTER VIEW … SET (security_barrier | security_invoker | check_option)` changes whose
    privileges and which row filters apply through the view.

    Safe alternative: review it as a security change in a migration of its own; for SECURITY
    DEFINER always pin `SET search_path = pg_catalog, <schema>`.
    """

    code = "LG807"
    name = "ban-alter-security-options"
    severity = Severity.WARNING
    summary = "ALTER FUNCTION SECURITY/SET/RESET or ALTER VIEW SET/RESET options"
    kinds = frozenset({"AlterFunctionStmt", "AlterTableStmt"})
    alter_commands = frozenset({"AT_SetRelOptions", "AT_ResetRelOptions"})
    squawk = ("ban-alter-function-options", "ban-alter-view-options")
    bad = (Example("ALTER FUNCTION refund(bigint) SECURITY DEFINER;"),
           Example("ALTER VIEW customer_emails SET (security_barrier = false);"))
    good = (Example("ALTER FUNCTION refund(bigint) IMMUTABLE;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        if stmt.kind == "AlterTableStmt":
            if node.get("objtype") == "OBJECT_VIEW" and not ctx.is_new(node.get("relation", {})):
                for cmd in alter_cmds(node):
                    if cmd.get("subtype") in ("AT_SetRelOptions", "AT_ResetRelOptions"):
                        yield (f"changing options of view {table_name(node['relation'])} changes whose privileges "
                               f"and row filters apply through it; review it as a security change")
            return
        function = name_key(node.get("func", {}).get("objname", []))
        changed = {"security", "set"} & set(_option_names(node.get("actions", [])))
        if changed and ("function", function) not in ctx.new_objects:
            yield (f"ALTER FUNCTION {function} {'/'.join(sorted(changed)).upper()} changes how it runs for every "
                   f"caller; review it as a security change")


_SEQUENCE_VALUES = frozenset({"restart", "start", "increment", "minvalue", "maxvalue", "cycle"})


class BanAlterSequenceValues(Rule):
    """Restarting a sequence, or changing its step or bounds, can hand out ids that already exist.

    `ALTER SEQUENCE … RESTART` (and `ALTER COLUMN … RESTART` on an identity column) makes the
    next inserts collide with existing keys (`duplicate key value violates unique
    constraint`); `INCREMENT`, `MINVALUE`/`MAXVALUE` and `CYCLE` change the range the app's
    ids come from, and `CYCLE` wraps into used values. The sequence's old position is not
    transactional to other sessions, so no down file restores it exactly.

    Safe alternative: only move a sequence forward, past the largest existing value:
    `SELECT setval('orders_id_seq', (SELECT max(id) FROM orders));` after a bulk load.
    """

    code = "LG808"
    name = "ban-alter-sequence-values"
    severity = Severity.WARNING
    summary = "ALTER SEQUENCE RESTART/INCREMENT/MINVALUE/MAXVALUE/CYCLE of an existing sequence"
    kinds = frozenset({"AlterSeqStmt", "AlterTableStmt"})
    alter_commands = frozenset({"AT_SetIdentity"})
    squawk = ("ban-alter-sequence-values",)
    bad = (Example("ALTER SEQUENCE orders_id_seq RESTART WITH 1;"),
           Example("ALTER TABLE orders ALTER COLUMN id RESTART WITH 1;"))
    good = (Example("ALTER SEQUENCE orders_id_seq OWNED BY orders.id;"),
            Example("CREATE SEQUENCE invoice_numbers;\nALTER SEQUENCE invoice_numbers RESTART WITH 1000;"))

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        if stmt.kind == "AlterSeqStmt":
            changed = _SEQUENCE_VALUES & set(_option_names(node.get("options", [])))
            if changed and not ctx.is_new(node.get("sequence", {})):
                yield (f"{'/'.join(sorted(changed)).upper()} on sequence {table_name(node['sequence'])} can hand out "
                       f"ids that exist; only move it forward with setval past max(id)")
            return
        relation = node.get("relation", {})
        for cmd in alter_cmds(node):
            if cmd.get("subtype") != "AT_SetIdentity" or is_new_column(ctx, relation, cmd.get("name", "")):
                continue
            changed = _SEQUENCE_VALUES & set(_option_names(cmd.get("def", {}).get("List", {}).get("items", [])))
            if changed:
                yield (f"{'/'.join(sorted(changed)).upper()} on identity {table_name(relation)}.{cmd.get('name', '')} "
                       f"can hand out ids that exist; only move it forward with setval past max(id)")


class BanAddCompositeAttribute(Rule):
    """Adding an attribute to a composite type breaks code that builds its values positionally.

    `ROW(…)::address` casts and `INSERT … VALUES (ROW(…))` list the attributes in order; a new
    attribute makes them fail (`cannot cast type record to address`) or fill the wrong fields
    until every caller is changed. Tables with a column of the type are rewritten if the new
    attribute has a default (it cannot have one).

    Safe alternative: create a new type with the extra attribute, move columns and callers to
    it, and drop the old type later. Types created in the same migration are not flagged.
    """

    code = "LG809"
    name = "ban-add-composite-attribute"
    severity = Severity.WARNING
    summary = "ALTER TYPE … ADD ATTRIBUTE on an existing composite type"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = ADDS_COLUMNS
    squawk = ("ban-add-composite-attribute",)
    bad = (Example("ALTER TYPE address ADD ATTRIBUTE street2 text;"),)
    good = (Example("CREATE TYPE address AS (city text);\nALTER TYPE address ADD ATTRIBUTE street text;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        if node.get("objtype") != "OBJECT_TYPE" or relation_key(node.get("relation", {})) in ctx.new_types:
            return
        if any(cmd.get("subtype") == "AT_AddColumn" for cmd in alter_cmds(node)):
            yield (f"ADD ATTRIBUTE to type {table_name(node['relation'])} breaks code building its values "
                   f"positionally; create a new type and move callers to it")


class BanAlterDomainWithAddConstraint(Rule):
    """`ALTER DOMAIN … ADD CONSTRAINT` checks every column of the domain, in every table, at once.

    PostgreSQL validates the new constraint against every stored value of every column whose
    type is the domain, in one statement, holding a lock on each of those tables that blocks
    their writes meanwhile; nothing in the statement says which tables those are.

    Safe alternative: add it `NOT VALID` (new values are checked at once), then run
    `ALTER DOMAIN … VALIDATE CONSTRAINT …` in a later migration, which checks the stored values
    without blocking writes. A domain created in the same migration is not flagged.
    """

    code = "LG810"
    name = "ban-alter-domain-with-add-constraint"
    summary = "ALTER DOMAIN ADD CONSTRAINT without NOT VALID"
    kinds = frozenset({"AlterDomainStmt"})
    squawk = ("ban-alter-domain-with-add-constraint",)
    bad = (Example("ALTER DOMAIN cents ADD CONSTRAINT cents_positive CHECK (VALUE >= 0);"),)
    good = (Example("ALTER DOMAIN cents ADD CONSTRAINT cents_positive CHECK (VALUE >= 0) NOT VALID;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        constraint = node.get("def", {}).get("Constraint", {})
        domain = name_key(node.get("typeName", []))
        if node.get("subtype") == "C" and not constraint.get("skip_validation") and domain not in ctx.new_types:
            yield (f"ADD CONSTRAINT on domain {domain} checks every column of it in every table while blocking "
                   f"their writes; add it NOT VALID, then VALIDATE CONSTRAINT in a later migration")


class BanCreateDomainWithConstraint(Rule):
    """A domain with a CHECK makes every later change to that check, and every column of it, expensive.

    Adding a column whose type is a domain with a CHECK rewrites the table (each row's value is
    checked); changing the check later means `ALTER DOMAIN … ADD CONSTRAINT` over every column
    of the domain in every table, and dropping it loosens them all at once.

    Safe alternative: a plain type with a CHECK constraint on each column
    (`amount_cents bigint CHECK (amount_cents >= 0)`), which can be added `NOT VALID` and
    validated per table.
    """

    code = "LG811"
    name = "ban-create-domain-with-constraint"
    severity = Severity.WARNING
    summary = "CREATE DOMAIN with a CHECK constraint"
    kinds = frozenset({"CreateDomainStmt"})
    file_kinds = UP_ONLY
    squawk = ("ban-create-domain-with-constraint",)
    bad = (Example("CREATE DOMAIN cents AS bigint CHECK (VALUE >= 0);"),)
    good = (Example("CREATE DOMAIN email AS text;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        checks = [c for c in node.get("constraints", []) if c.get("Constraint", {}).get("contype") == "CONSTR_CHECK"]
        if checks:
            yield (f"domain {name_key(node.get('domainname', []))} has a CHECK: adding a column of it rewrites the "
                   f"table and changing the check scans every table; put CHECKs on columns instead")


class BanDetachInheritance(Rule):
    """`DETACH PARTITION` and `NO INHERIT` make rows disappear from queries on the parent.

    After the statement, everything stored in the detached table is no longer returned by
    queries on the parent table, and writes routed through the parent no longer reach it.
    Running code that reads the parent sees the rows vanish at commit. (The lock taken by a
    detach is a separate rule's concern: `require-concurrent-partition-detach`.)

    Safe alternative: make sure no reader of the parent needs those rows any more (archive them
    or move them first), then detach in a migration of its own. Tables the same migration
    created are not flagged.
    """

    code = "LG812"
    name = "ban-detach-inheritance"
    severity = Severity.WARNING
    summary = "DETACH PARTITION / NO INHERIT of an existing table"
    kinds = frozenset({"AlterTableStmt"})
    alter_commands = frozenset({"AT_DropInherit", "AT_DetachPartition"})
    squawk = ("ban-detach-inheritance",)
    bad = (Example("ALTER TABLE events NO INHERIT events_parent;"),)
    good = (Example("CREATE TABLE events_2020 (id bigint);\nALTER TABLE events_2020 NO INHERIT events;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        relation = stmt.node.get("relation", {})
        for cmd in alter_cmds(stmt.node):
            subtype = cmd.get("subtype")
            if subtype == "AT_DropInherit" and not ctx.is_new(relation):
                yield (f"NO INHERIT makes the rows of {table_name(relation)} vanish from queries on its parent; "
                       f"make sure no reader needs them first")
            elif subtype == "AT_DetachPartition":
                child = cmd.get("def", {}).get("PartitionCmd", {}).get("name", {})
                if not ctx.is_new(child):
                    yield (f"DETACH PARTITION makes the rows of {table_name(child)} vanish from queries on "
                           f"{table_name(relation)}; make sure no reader needs them first")


class BanReplicaIdentityChange(Rule):
    """Replica identity and publications decide what logical replication and CDC consumers receive.

    `REPLICA IDENTITY` changes which old-row values are logged for UPDATE and DELETE (`FULL`
    logs whole rows: more WAL on every write; `NOTHING` stops UPDATE/DELETE from replicating
    and makes them fail on a published table). Dropping a publication, or dropping or
    replacing its tables, silently stops changes reaching subscribers and change-data-capture
    pipelines (Debezium, …), which are not in this repository.

    Safe alternative: coordinate with the owners of the subscribers and make the change in a
    migration of its own. Adding a table to a publication is not flagged.
    """

    code = "LG813"
    name = "ban-replica-identity-change"
    severity = Severity.WARNING
    summary = "REPLICA IDENTITY change, DROP PUBLICATION, or removing tables from one"
    kinds = frozenset({"AlterTableStmt", "DropStmt", "AlterPublicationStmt"})
    alter_commands = frozenset({"AT_ReplicaIdentity"})
    squawk = ("ban-replica-identity",)
    bad = (Example("ALTER TABLE orders REPLICA IDENTITY FULL;"), Example("DROP PUBLICATION shop_changes;"))
    good = (Example("ALTER PUBLICATION shop_changes ADD TABLE orders;"),)

    def check(self, stmt: Statement, ctx: Context) -> Iterator[Hit | str]:
        node = stmt.node
        if stmt.kind == "DropStmt":
            if node.get("removeType") == "OBJECT_PUBLICATION":
                yield "DROP PUBLICATION stops changes reaching its subscribers and CDC consumers"
        elif stmt.kind == "AlterPublicationStmt":
            if node.get("action") in ("AP_DropObjects", "AP_SetObjects") or node.get("options"):
                yield (f"changing publication {node.get('pubname', '')} changes what subscribers and CDC consumers "
                       f"receive; coordinate with them")
        elif not ctx.is_new(node.get("relation", {})):
            for cmd in alter_cmds(node):
                if cmd.get("subtype") == "AT_ReplicaIdentity":
                    yield (f"REPLICA IDENTITY on {table_name(node['relation'])} changes what logical replication "
                           f"logs and sends for UPDATE/DELETE; coordinate with subscribers")
