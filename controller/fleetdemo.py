"""`lockgate demo --fleet`: one migration set rolled out to four tenant databases in two waves.

The same throwaway world as `lockgate demo` (lockgate.controller.demo), with four databases of
one server and a fleet file naming them: a canary wave of one tenant, then the other three at
once. A merge reaches every tenant; a migration whose gate fails on the canary's data is rolled
back there and halts the fleet, and the commit's note names the tenant; fixed and retried on
that tenant, the next pass takes it to the rest; a revert rolls every tenant back, the canary
last. Commits skip the pre-commit hooks (the first demo shows them) to keep it short.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from lockgate.controller.demo import BRANCH, Narrator, Ran, World, expect
from lockgate.controller.pgserver import PostgresServer, create_database

TENANTS = ("tenant-0", "tenant-1", "tenant-2", "tenant-3")
CANARY = TENANTS[0]
ACCOUNTS = 5_000
LEGACY = 3  # accounts the canary imported long ago, without an email address

TITLE = "lockgate demo --fleet: one migration set, four tenant databases, a canary and a wave"

ACCOUNTS_MIGRATION = ("20240301000000_create_accounts", {
    "up": "-- Description: Accounts of the tenant\n\n"
          "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL);\n",
    "down": "-- Description: Remove the accounts\n\nDROP TABLE accounts;\n",
    "validate": "-- Description: The table is there\n\n-- Gate: accounts exists.\n"
                "SELECT to_regclass('accounts') IS NOT NULL AS accounts_exist;\n",
})
# Every account with an email gets a plan: the gate fails where an account has none.
PLAN_MIGRATION = ("20240302000000_add_account_plan", {
    "up": "-- Description: Accounts get a plan, backfilled in batches\n\n"
          "-- Nullable, no default: a catalog-only change.\n"
          "ALTER TABLE accounts ADD COLUMN plan text;\n\n"
          "-- lockgate:batch size=1000 key=id\n"
          "UPDATE accounts SET plan = CASE WHEN id % 10 = 0 THEN 'pro' ELSE 'free' END WHERE email LIKE '%@%';\n",
    "down": "-- Description: Remove the plan\n\nALTER TABLE accounts DROP COLUMN plan;\n",
    "validate": "-- Description: Every account has a plan\n\n-- Gate: the backfill reached every account.\n"
                "SELECT count(*) = 0 AS every_account_has_a_plan FROM accounts WHERE plan IS NULL;\n",
})
SEED = f"""
INSERT INTO accounts SELECT g, 'user' || g || '@example.com' FROM generate_series(1, {ACCOUNTS}) AS g;
ANALYZE accounts;
"""
LEGACY_SEED = (f"INSERT INTO accounts SELECT {ACCOUNTS} + g, 'legacy import ' || g "
               f"FROM generate_series(1, {LEGACY}) AS g;")
LEGACY_FIX = "UPDATE accounts SET email = 'legacy' || id || '@example.com' WHERE email NOT LIKE '%@%';"


def fleet_file(dsns: dict[str, str]) -> str:
    return yaml.safe_dump({"waves": [
        {"name": "canary", "targets": [{"name": CANARY, "dsn": dsns[CANARY]}]},
        {"name": "rest", "parallel": 3, "max_failures": 1,
         "targets": [{"name": name, "dsn": dsns[name]} for name in TENANTS[1:]]},
    ]}, sort_keys=False)


class FleetDemo:
    def __init__(self, world: World, narrator: Narrator, dsns: dict[str, str], fleet: Path) -> None:
        self.w = world
        self.n = narrator
        self.dsns = dsns
        self.fleet = fleet

    @classmethod
    def script(cls, root: Path, server: PostgresServer, narrator: Narrator) -> FleetDemo:
        dsns = {name: create_database(server.dsn(), name.replace("-", "_")) for name in TENANTS}
        fleet = root / "fleet.yaml"
        fleet.write_text(fleet_file(dsns))
        return cls(World(root, server, dsns[CANARY], {"LOCKGATE_FLEET": str(fleet)}), narrator, dsns, fleet)

    def kept(self) -> str:
        return f"the databases {', '.join(name.replace('-', '_') for name in TENANTS)} (see {self.fleet})"

    def run(self) -> None:
        self.setup()
        self.accounts_everywhere()
        merge = self.gate_fails_on_the_canary()
        self.fixed_and_retried()
        self.reverted(merge)

    def sync(self, expected: int, what: str) -> Ran:
        synced = self.w.sync()
        self.n.shown("lockgate sync", synced)
        expect(synced.code == expected, f"{what} (sync exited {synced.code})")
        return synced

    def status(self) -> Ran:
        """`lockgate status` of the head: the note, and each tenant's ledger state beside it."""
        shown = self.w.run([self.w.lockgate, "status"], cwd=self.w.root)
        self.n.shown("lockgate status", shown)
        return shown

    def committed(self, migration: tuple[str, dict[str, str]], message: str) -> None:
        w = self.w
        name, files = migration
        for kind, text in files.items():
            w.write_migration(name, kind, text)
        w.hash()
        w.git("add", "--all")
        w.git("commit", "--quiet", "--no-verify", "-m", message)

    def setup(self) -> None:
        w, n = self.w, self.n
        n.step("A throwaway PostgreSQL with four tenant databases, an origin and a developer's clone")
        major = w.repositories()
        n.say(f"PostgreSQL {major} on 127.0.0.1:{w.server.port}, databases {', '.join(TENANTS)}")
        n.say(f"the controller's fleet file, {self.fleet} (LOCKGATE_FLEET):")
        for line in self.fleet.read_text().splitlines():
            n.say(f"  {line}")

    def accounts_everywhere(self) -> None:
        w, n = self.w, self.n
        n.step("A merge reaches every tenant: the canary first, then the other three at once")
        name = ACCOUNTS_MIGRATION[0]
        self.committed(ACCOUNTS_MIGRATION, "Add accounts")
        w.git("push", "--quiet", "origin", BRANCH)
        n.say(f"$ git commit -m 'Add accounts' && git push   (commit {w.head()[:12]} on {BRANCH})")
        synced = self.sync(0, "sync did not bring the accounts table to every tenant")
        expect(synced.has(f"{name} applied on 4/4 targets"), "the note does not say applied on 4/4 targets")
        expect(synced.output.index(f"[{CANARY}]") < min(synced.output.index(f"[{t}]") for t in TENANTS[1:]),
               "the canary did not go first")
        for tenant in TENANTS:
            w.execute(SEED, on=self.dsns[tenant])
        w.execute(LEGACY_SEED, on=self.dsns[CANARY])
        n.say(f"seeded {ACCOUNTS:,} accounts in each tenant; {CANARY} also has {LEGACY} legacy accounts "
              "imported without an email address")

    def gate_fails_on_the_canary(self) -> str:
        w, n = self.w, self.n
        n.step("A migration whose gate fails on the canary's data: rolled back there, the fleet halts")
        name = PLAN_MIGRATION[0]
        w.git("switch", "--quiet", "-c", "account-plan")
        self.committed(PLAN_MIGRATION, "Give accounts a plan")
        merge = w.merge("account-plan", n)
        synced = self.sync(1, "sync did not fail the gate on the canary")
        expect(synced.has(f"{name} applied on 0/4 targets: failed on {CANARY} ("), "the note does not name the canary")
        expect(synced.has(f"not started: {', '.join(TENANTS[1:])}"), "the other tenants were not held back")
        expect(all("plan" not in w.columns("accounts", on=dsn) for dsn in self.dsns.values()),
               "a tenant has the plan column")
        n.say("no tenant has the plan column: the canary's was rolled back, the others never started")
        n.shown("git log --notes=lockgate -1", Ran(0, ""), w.notes())
        shown = self.status()
        expect(shown.code == 1 and f"{CANARY}  {name[:14]}  failed" in shown.output, "status does not show the failure")
        return merge

    def fixed_and_retried(self) -> None:
        w, n = self.w, self.n
        n.step(f"The data fixed on {CANARY} and the migration retried there; the next pass takes the rest")
        name = PLAN_MIGRATION[0]
        w.execute(LEGACY_FIX, on=self.dsns[CANARY])
        n.say(f"fixed on {CANARY}: {LEGACY_FIX}")
        argv = ["retry", name[:14], "--target", CANARY, "--dir", str(w.clone / "migrations")]
        retried = w.run([w.lockgate, *argv], cwd=w.root)
        n.shown(f"lockgate {' '.join(argv[:4])} --dir app/migrations", retried)
        expect(retried.code == 0 and retried.has(f"applied     {name}"), "the retry did not apply on the canary")
        synced = self.sync(0, "sync did not take the migration to the other tenants")
        expect(synced.has(f"{name} applied on 4/4 targets"), "the note does not say applied on 4/4 targets")
        plans = [w.query("SELECT count(plan) FROM accounts", on=dsn)[0][0] for dsn in self.dsns.values()]
        expect(plans == [ACCOUNTS + LEGACY] + [ACCOUNTS] * 3, f"not every account got a plan: {plans}")
        n.say("every account of every tenant has a plan: " + ", ".join(
            f"{tenant} {count:,}" for tenant, count in zip(TENANTS, plans, strict=True)))
        shown = self.status()
        expect(shown.code == 0, "status does not show every tenant applied")

    def reverted(self, merge: str) -> None:
        w, n = self.w, self.n
        n.step("Reverting the merge rolls every tenant back, the canary last")
        w.revert(merge, n)
        synced = self.sync(0, "sync did not roll the fleet back")
        expect(synced.has(f"{PLAN_MIGRATION[0]} rolled back on 4/4 targets"), "the note does not say 4/4 rolled back")
        rolled = [line.split("]")[0].lstrip("[") for line in synced.output.splitlines()
                  if line.startswith("[") and "rolled back" in line]
        expect(rolled[-1:] == [CANARY], f"the canary was not rolled back last: {rolled}")
        expect(all("plan" not in w.columns("accounts", on=dsn) for dsn in self.dsns.values()),
               "a tenant still has the plan column")
        n.say("no tenant has the plan column any more")
        n.shown("git log --notes=lockgate -1", Ran(0, ""), w.notes())
