"""The git source against real repositories: first-parent attribution, reverts, force-pushes,
snapshots without checkout, credentials kept out of .git/config, and approval."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
from gitrepos import Clone, Origin, ssh_key

from lockgate.controller import approval
from lockgate.controller.approval import Apply, Refuse
from lockgate.controller.redact import Redactor
from lockgate.controller.source import Source, SourceError
from tests.loopbackhttp import serving_repository

V1, V2, V3 = "20240101000000", "20240102000000", "20240103000000"


@pytest.fixture
def dev(origin: Origin) -> Clone:
    dev = origin.clone("dev")
    dev.add_migration(V1, "create_t", up="CREATE TABLE t (id int);\n", down="DROP TABLE t;\n")
    dev.push()
    return dev


def cache(origin: Origin, tmp_path: Path) -> Source:
    return Source.cache(origin.url, tmp_path / "cache")


def merged_feature(dev: Clone, version: str = V2, name: str = "add_c") -> tuple[str, str]:
    """A feature branch with the migration and an unrelated commit, merged --no-ff: (feature, merge)."""
    dev.branch(f"feature-{version}")
    feature = dev.add_migration(version, name, up="ALTER TABLE t ADD COLUMN c int;\n",
                                down="ALTER TABLE t DROP COLUMN c;\n")
    dev.commit_files({"README": "docs\n"}, "docs")
    dev.switch("main")
    dev.commit_files({"app.py": "x = 1\n"}, "work on main meanwhile")
    merge = dev.merge_branch(f"feature-{version}")
    dev.push()
    return feature, merge


def test_merge_commit_brings_the_migration_not_the_feature_commit(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    first = dev.head
    feature, merge = merged_feature(dev)
    source = cache(origin, tmp_path)

    assert source.fetch() == merge
    history = source.history()

    assert history.head.sha == merge
    assert history.introduced[V1].sha == first
    assert history.introduced[V2].sha == merge
    assert history.introduced[V2].is_merge
    assert feature not in {c.commit.sha for c in history.changes}
    assert [(c.version, c.kind) for c in history.changes] == [(V1, "added"), (V2, "added")]
    assert history.removed_by == {}


def test_revert_commit_is_recorded_as_removed_by(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    _, merge = merged_feature(dev)
    revert = dev.revert(merge)
    dev.push()
    source = cache(origin, tmp_path)
    source.fetch()

    history = source.history()

    assert history.removed_by[V2].sha == revert
    assert V2 not in history.introduced
    assert [c.kind for c in history.changes if c.version == V2] == ["added", "removed"]
    # Re-applying the revert brings it back, now tied to the newest commit.
    again = dev.revert(revert)
    dev.push()
    source.fetch()
    history = source.history()
    assert history.introduced[V2].sha == again
    assert V2 not in history.removed_by
    assert [c.sha for c in history.commits_for(V2)] == [again]


def test_edit_after_introduction_is_a_change_by_a_later_commit(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    introduced = dev.head
    edit = dev.commit_files({f"migrations/{V1}_create_t.down.sql": "DROP TABLE IF EXISTS t;\n"}, "edit down")
    dev.push()
    source = cache(origin, tmp_path)
    source.fetch()

    history = source.history()

    assert history.introduced[V1].sha == introduced
    assert [(c.kind, c.commit.sha) for c in history.changes] == [("added", introduced), ("changed", edit)]
    assert [c.sha for c in history.commits_for(V1)] == [introduced, edit]


def test_history_ignores_files_outside_the_migrations_dir(origin: Origin, tmp_path: Path) -> None:
    dev = origin.clone("dev")
    dev.commit_files({
        "other/20240101000000_x.up.sql": "SELECT 1;\n",
        "migrations/nested/20240101000000_y.up.sql": "SELECT 1;\n",
        "migrations/notes.txt": "hello\n",
    }, "not migrations")
    dev.push()
    source = cache(origin, tmp_path)
    source.fetch()

    history = source.history()

    assert history.head.sha == dev.head
    assert history.changes == [] and history.introduced == {}


def test_force_push_that_rewrites_history_is_detectable(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    base = dev.head
    _, merge = merged_feature(dev)
    source = cache(origin, tmp_path)
    known = source.fetch()
    assert known == merge and source.is_ancestor(base) and source.is_ancestor(known)

    dev.reset_hard(base)
    rewritten = dev.add_migration(V3, "other")
    dev.push(force=True)

    assert source.fetch() == rewritten
    assert not source.is_ancestor(known)
    assert source.is_ancestor(base)
    assert not source.is_ancestor("0" * 40)
    assert V2 not in source.history().introduced


def test_saved_history_is_extended_and_agrees_with_a_full_walk(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    source = cache(origin, tmp_path)
    full = Source.local(origin.path)  # no saved history: walks everything every time

    def both() -> None:
        source.fetch()
        extended = source.history()
        walked = full.history()
        assert extended == walked
        assert Source.cache(origin.url, tmp_path / "cache").history() == walked  # read back from disk

    both()
    _, merge = merged_feature(dev)
    both()
    dev.commit_files({"app.py": "x = 2\n"}, "no migration touched")
    dev.push()
    both()
    dev.revert(merge)
    dev.push()
    both()
    dev.reset_hard(merge)
    dev.add_migration(V3, "rewritten")
    dev.push(force=True)
    both()
    assert list(source.history().introduced) == [V1, V2, V3]
    assert source.history(f"{merge}~1").head.sha == origin.repo.commit(merge).parents[0].hexsha
    both()


def test_snapshot_reads_any_commit_without_checkout(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    first = dev.head
    merged_feature(dev)
    source = cache(origin, tmp_path)
    source.fetch()

    with source.migrations_at() as head:
        assert [m.version for m in head.migrations.migrations] == [V1, V2]
        assert head.migrations.by_version()[V2].up.text == "ALTER TABLE t ADD COLUMN c int;\n"
        assert (head.migrations.directory / "lockgate.sum").is_file()
        # Files with the same content are one blob in git; each still gets its text.
        assert [m.validate.text for m in head.migrations.migrations] == ["SELECT true;\n"] * 2
        root = head.root
        assert head.relative(str(head.migrations.by_version()[V2].up.path)) == f"migrations/{V2}_add_c.up.sql"
    assert not root.exists()
    with source.migrations_at(first) as old:
        assert [m.version for m in old.migrations.migrations] == [V1]
    assert source.repo.bare


def test_snapshot_of_a_commit_without_migrations_is_empty(origin: Origin, tmp_path: Path) -> None:
    dev = origin.clone("dev")
    dev.commit_files({"README": "x\n"}, "start")
    dev.push()
    source = cache(origin, tmp_path)
    source.fetch()
    with source.migrations_at() as snap:
        assert snap.migrations.migrations == []


def test_local_source_reads_a_working_clone_in_place(dev: Clone) -> None:
    source = Source.local(dev.path / "migrations", migrations_dir=PurePosixPath("migrations"))
    assert source.head() == dev.head
    assert list(source.history().introduced) == [V1]


def test_fetch_failure_is_one_redacted_line(tmp_path: Path) -> None:
    source = Source.cache("https://user:s3cr3t-pass@127.0.0.1:9/none.git", tmp_path / "cache")
    with pytest.raises(SourceError) as raised:
        source.fetch()
    message = str(raised.value)
    assert "\n" not in message and message.startswith("git fetch failed")
    assert "s3cr3t-pass" not in message
    assert "s3cr3t-pass" not in (tmp_path / "cache" / "repo.git" / "config").read_text()


@pytest.fixture
def served_origin(origin: Origin, dev: Clone) -> Iterator[tuple[str, list[str | None]]]:
    token = "glpat-TOKEN-1234567890"
    with serving_repository(origin, "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()) as served:
        yield served


def test_token_is_sent_by_header_and_never_stored(
    served_origin: tuple[str, list[str | None]], dev: Clone, tmp_path: Path
) -> None:
    url, seen = served_origin
    token = "glpat-TOKEN-1234567890"

    source = Source.cache(url, tmp_path / "cache", token=token)
    assert source.fetch() == dev.head
    assert seen and all(h and h.startswith("Basic ") for h in seen)

    config = (tmp_path / "cache" / "repo.git" / "config").read_text()
    assert url in config and token not in config
    assert base64.b64encode(f"x-access-token:{token}".encode()).decode() not in config

    refused = Source.cache(url, tmp_path / "cache", token="wrong-token-000")
    with pytest.raises(SourceError) as raised:
        refused.fetch()
    assert "wrong-token-000" not in str(raised.value)


def test_token_in_the_url_is_moved_out_of_the_config(
    served_origin: tuple[str, list[str | None]], dev: Clone, tmp_path: Path
) -> None:
    url, _ = served_origin
    with_token = url.replace("http://", "http://glpat-TOKEN-1234567890@")
    source = Source.cache(with_token, tmp_path / "cache", redact=Redactor())
    assert source.fetch() == dev.head
    assert "glpat" not in (tmp_path / "cache" / "repo.git" / "config").read_text()
    assert source.redact(f"failed at {with_token}") == f"failed at {url.replace('http://', 'http://***@')}"


# Approval ------------------------------------------------------------------------------------


def verdicts(source: Source, **kwargs: object) -> dict[str, approval.Verdict]:
    history = source.history()
    with source.migrations_at() as snap:
        return approval.approve(history, snap, **kwargs)  # type: ignore[arg-type]


def test_merged_and_summed_migrations_are_approved(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    _, merge = merged_feature(dev)
    source = cache(origin, tmp_path)
    source.fetch()

    result = verdicts(source)

    assert list(result) == [V1, V2]
    assert isinstance(result[V2], Apply) and result[V2].commit.sha == merge
    assert result[V2].migration.id == f"{V2}_add_c"


def test_a_migration_not_in_the_walked_history_is_refused(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    first = dev.head
    merged_feature(dev)
    source = cache(origin, tmp_path)
    source.fetch()
    older = source.history(first)

    with source.migrations_at() as tree:
        result = approval.approve(older, tree)

    assert isinstance(result[V1], Apply)
    assert result[V2] == Refuse(V2, "add_c", (f"{V2}_add_c did not reach {first[:12]} through first-parent history",))


def test_files_that_do_not_match_the_sum_are_refused(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    dev.add_migration(V2, "add_c", rehash=False)
    dev.push()
    source = cache(origin, tmp_path)
    source.fetch()

    result = verdicts(source)

    assert isinstance(result[V1], Apply)
    refused = result[V2]
    assert isinstance(refused, Refuse)
    assert refused.reasons == tuple(
        f"migrations/{V2}_add_c.{kind}.sql:1:1: {V2}_add_c.{kind}.sql was added" for kind in ("up", "down", "validate")
    )


def test_a_missing_sum_refuses_every_migration(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    dev.commit_files({"migrations/lockgate.sum": None}, "drop the sum")
    dev.push()
    source = cache(origin, tmp_path)
    source.fetch()

    result = verdicts(source)

    assert isinstance(result[V1], Refuse)
    assert result[V1].reasons == ("migrations/lockgate.sum:1:1: lockgate.sum is missing: run `lockgate hash`",)


def test_unparsable_sql_is_refused_by_the_default_check(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    dev.add_migration(V2, "broken", up="ALTER TABLE t ADD COLUMN;\n")
    dev.push()
    source = cache(origin, tmp_path)
    source.fetch()

    result = verdicts(source, versions=[V2])

    assert list(result) == [V2]
    assert isinstance(result[V2], Refuse)
    assert len(result[V2].reasons) == 1
    assert result[V2].reasons[0].startswith(f"migrations/{V2}_broken.up.sql:1:")


def test_a_pluggable_checker_decides_too(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    source = cache(origin, tmp_path)
    source.fetch()

    def no_drops(_set: object, migration: approval.Migration) -> list[str]:
        return [f"{migration.id}: DROP in down"] if "DROP" in migration.down.text else []

    result = verdicts(source, checker=no_drops)

    assert result[V1] == Refuse(V1, "create_t", (f"{V1}_create_t: DROP in down",), source.history().introduced[V1])


def test_require_signed_refuses_unsigned_and_foreign_keys(origin: Origin, dev: Clone, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    key, allowed_line = ssh_key(keys, "trusted")
    other_key, _ = ssh_key(keys, "stranger")
    allowed = keys / "allowed_signers"
    allowed.write_text(allowed_line)

    dev.sign_with(key)
    signed = dev.add_migration(V2, "signed")
    dev.sign_with(other_key)
    dev.add_migration(V3, "foreign")
    dev.push()
    source = cache(origin, tmp_path)
    source.fetch()
    check = approval.signature_check(source.repo, True, allowed)

    result = verdicts(source, signatures=check)

    assert isinstance(result[V2], Apply) and result[V2].commit.sha == signed
    unsigned = result[V1]
    assert isinstance(unsigned, Refuse)
    assert unsigned.reasons == (f"commit {source.history().introduced[V1].sha[:12]} is not signed",)
    foreign = result[V3]
    assert isinstance(foreign, Refuse)
    assert "is not signed by an allowed key" in foreign.reasons[0]
    assert approval.signature_check(source.repo, False, None) is None


def test_require_signed_without_allowed_signers_is_a_usage_error(tmp_path: Path) -> None:
    from lockgate.hooks.errors import UsageError

    with pytest.raises(UsageError, match="allowed_signers"):
        approval.signature_check(None, True, None)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="is not a file"):
        approval.signature_check(None, True, tmp_path / "missing")  # type: ignore[arg-type]
