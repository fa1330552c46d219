"""Status notes on real commits: the record format, shared notes, pushes that race, fresh clones."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from gitrepos import Clone, Origin

from lockgate.controller import cli
from lockgate.controller.ledger import Ledger
from lockgate.controller.outcome import GateResult, Outcome
from lockgate.controller.redact import Redactor
from lockgate.controller.source import Source
from lockgate.controller.status import MigrationRecord, Notes, StatusNote, parse, render, summary_line

V1, V2 = "20240115093000", "20240116000000"
T0 = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)


def applied(version: str = V1, name: str = "add_customer_tier", finished: float = 12.3) -> MigrationRecord:
    return MigrationRecord(
        version=version, name=name, outcome="applied",
        started_at=T0, finished_at=T0 + timedelta(seconds=finished), duration_s=finished,
        rows_before={"customers": 3}, rows_after={"customers": 3},
        validation=[GateResult(gate=f"gate {i}", passed=True) for i in range(3)],
    )


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    origin = Origin.create(tmp_path)
    dev = origin.clone("dev")
    dev.add_migration(V1, "add_customer_tier")
    dev.push()
    return origin


def cache(origin: Origin, tmp_path: Path, name: str = "cache") -> Source:
    source = Source.cache(origin.url, tmp_path / name)
    source.fetch()
    return source


def test_note_text_is_a_summary_line_then_a_versioned_json_record() -> None:
    note = StatusNote().with_record(applied())

    text = render(note)

    first, blank, *rest = text.splitlines()
    assert first == f"lockgate: {V1}_add_customer_tier applied in 12.3s (validation 3/3 passed)"
    assert blank == ""
    record = json.loads("\n".join(rest))
    assert record["schema"] == 1
    entry = record["migrations"][0]
    assert entry["version"] == V1 and entry["outcome"] == "applied"
    assert entry["rows_before"] == {"customers": 3}
    assert entry["validation"][0] == {"gate": "gate 0", "line": None, "passed": True, "detail": ""}
    assert entry["started_at"] == "2024-01-15T09:30:00Z" and entry["duration_s"] == 12.3
    assert entry["controller_version"]
    assert parse(text) == note


def test_summary_lines_for_each_outcome() -> None:
    failed = applied().model_copy(update={
        "outcome": Outcome.FAILED, "reason": "gate 2 failed:\n row count changed",
        "validation": [GateResult(gate="a", passed=True), GateResult(gate="b", passed=False)],
    })
    assert summary_line(failed) == (
        f"lockgate: {V1}_add_customer_tier failed after 12.3s (validation 1/2 passed): gate 2 failed: row count changed"
    )
    refused = MigrationRecord(version=V1, name="x", outcome="refused", reason="commit abc is not signed")
    assert summary_line(refused) == f"lockgate: {V1}_x refused: commit abc is not signed"
    rolled = MigrationRecord(version=V1, name="x", outcome="rolled_back", duration_s=1.25)
    assert summary_line(rolled) == f"lockgate: {V1}_x rolled back in 1.2s"


# A note as lockgate wrote it before the outcome vocabulary was one (gates without their line, a
# fleet target not reached): notes stay on commits for good, so they must read back as they were.
WRITTEN_BEFORE = """lockgate: 20240115093000_add_customer_tier applied in 12.3s (validation 1/1 passed)
lockgate: 20240116000000_add_index failed on 1/2 targets: not started: tenant-2

{
  "schema": 1,
  "migrations": [
    {
      "version": "20240115093000", "name": "add_customer_tier", "outcome": "applied", "reason": "",
      "started_at": "2024-01-15T09:30:00Z", "finished_at": "2024-01-15T09:30:12.300000Z", "duration_s": 12.3,
      "rows_before": {"customers": 3}, "rows_after": {"customers": 3},
      "validation": [{"gate": "every row has a tier", "passed": true, "detail": "true"}],
      "controller_version": "0.1.0", "targets": []
    },
    {
      "version": "20240116000000", "name": "add_index", "outcome": "failed", "reason": "not started: tenant-2",
      "started_at": null, "finished_at": null, "duration_s": null, "rows_before": {}, "rows_after": {},
      "validation": [], "controller_version": "0.1.0",
      "targets": [{"name": "tenant-1", "outcome": "applied", "reason": "", "duration_s": 1.0},
                  {"name": "tenant-2", "outcome": "not_started", "reason": "", "duration_s": null}]
    }
  ]
}
"""


def test_a_note_written_before_reads_back_as_it_was() -> None:
    note = parse(WRITTEN_BEFORE)

    tier, index = note.migrations
    assert (tier.outcome, index.outcome) == (Outcome.APPLIED, Outcome.FAILED)
    assert tier.validation == [GateResult(gate="every row has a tier", passed=True, detail="true")]
    assert [t.outcome for t in index.targets] == [Outcome.APPLIED, Outcome.NOT_STARTED]
    assert summary_line(tier) == WRITTEN_BEFORE.splitlines()[0]
    # Written again, every field keeps its word: the JSON says the same strings as before.
    again = json.loads(render(note).split("\n\n", 1)[1])
    before = json.loads(WRITTEN_BEFORE.split("\n\n", 1)[1])
    assert [m["outcome"] for m in again["migrations"]] == [m["outcome"] for m in before["migrations"]]
    assert [t["outcome"] for t in again["migrations"][1]["targets"]] == ["applied", "not_started"]


def test_foreign_text_is_not_a_status_note() -> None:
    with pytest.raises(ValueError, match="not a lockgate status note"):
        parse("reviewed by alice\n")


def test_migrations_on_one_commit_share_the_note(origin: Origin, tmp_path: Path) -> None:
    source = cache(origin, tmp_path)
    notes = Notes(source)
    head = source.head()

    notes.record(head, applied(V2, "second"))
    notes.record(head, MigrationRecord(version=V1, name="add_customer_tier", outcome="failed", reason="boom"))
    notes.record(head, applied(V1))

    note = notes.read(head)
    assert note is not None
    assert [(m.version, m.outcome) for m in note.migrations] == [(V1, "applied"), (V2, "applied")]
    text = notes.text(head) or ""
    assert text.splitlines()[:2] == [summary_line(applied(V1)), summary_line(applied(V2, "second"))]
    assert notes.read(source.branch_ref) == note


def test_secrets_never_reach_the_note(origin: Origin, tmp_path: Path) -> None:
    source = Source.cache(origin.url, tmp_path / "cache", redact=Redactor(["tok-abcdef-123"]))
    source.fetch()
    notes = Notes(source)
    record = MigrationRecord(
        version=V1, name="x", outcome="failed",
        reason="connection to postgresql://app:hunter22@db:5432/app failed with tok-abcdef-123",
        validation=[GateResult(gate="g", passed=False, detail="password=hunter22 rejected")],
    )

    notes.record(source.head(), record)

    text = notes.text(source.head()) or ""
    assert "hunter22" not in text and "tok-abcdef-123" not in text
    assert "postgresql://app:***@db:5432/app" in text


def test_pushed_notes_show_in_git_log_of_a_fresh_clone(origin: Origin, tmp_path: Path) -> None:
    source = cache(origin, tmp_path)
    notes = Notes(source)
    notes.record(source.head(), applied())

    assert notes.push().pushed

    fresh = origin.clone("fresh")
    fresh.git("fetch", "--quiet", "origin", "refs/notes/*:refs/notes/*")
    log = fresh.git("log", "-1", "--notes=lockgate")
    assert f"lockgate: {V1}_add_customer_tier applied in 12.3s (validation 3/3 passed)" in log


def test_concurrent_writers_both_land(origin: Origin, tmp_path: Path) -> None:
    dev = origin.clone("dev2")
    second_commit = dev.add_migration(V2, "second")
    dev.push()
    first_commit = origin.repo.commit(second_commit).parents[0].hexsha
    one, two = Notes(cache(origin, tmp_path, "one")), Notes(cache(origin, tmp_path, "two"))

    # Both write before either pushes: the second push is rejected, merges, and retries.
    one.record(first_commit, applied(V1))
    one.record(second_commit, applied(V2, "second"))
    two.record(second_commit, MigrationRecord(version="20240117000000", name="third", outcome="refused", reason="x"))
    two.record(first_commit, MigrationRecord(version=V1, name="add_customer_tier", outcome="dirty",
                                             finished_at=T0 - timedelta(days=1)))
    assert one.push().attempts == 1
    result = two.push()
    assert result.pushed and result.attempts == 2

    reader = Notes(cache(origin, tmp_path, "reader"))
    reader.fetch()
    shared = reader.read(second_commit)
    assert shared is not None
    assert [m.version for m in shared.migrations] == [V2, "20240117000000"]
    older = reader.read(first_commit)
    # The same version on both sides: the outcome that finished last wins.
    assert older is not None and [m.outcome for m in older.migrations] == ["applied"]


def test_a_failed_push_keeps_the_note_for_the_next_sync(origin: Origin, tmp_path: Path) -> None:
    source = cache(origin, tmp_path)
    notes = Notes(source)
    notes.record(source.head(), applied())
    moved = origin.path.with_name("moved.git")
    origin.path.rename(moved)

    result = notes.push(attempts=2)

    assert not result.pushed and result.attempts == 2 and "git push failed" in result.error
    assert notes.read(source.head()) is not None
    moved.rename(origin.path)
    assert notes.push().pushed
    fresh = Notes(cache(origin, tmp_path, "fresh"))
    fresh.fetch()
    assert fresh.read(fresh.source.head()) == notes.read(source.head())


def test_no_notes_yet_is_nothing_to_push_or_fetch(origin: Origin, tmp_path: Path) -> None:
    notes = Notes(cache(origin, tmp_path))
    notes.fetch()
    assert notes.read(notes.source.head()) is None
    assert notes.push().pushed


def test_notes_of_a_revert_commit(origin: Origin, tmp_path: Path) -> None:
    dev: Clone = origin.clone("dev3")
    revert = dev.revert(dev.head)
    dev.push()
    source = cache(origin, tmp_path)
    history = source.history()
    notes = Notes(source)

    notes.record(history.removed_by[V1].sha, MigrationRecord(version=V1, name="add_customer_tier",
                                                             outcome="rolled_back", duration_s=0.4))

    note = notes.read(revert)
    assert note is not None and note.migrations[0].outcome == "rolled_back"


# `lockgate status` ------------------------------------------------------------------------------


def published(origin: Origin, tmp_path: Path, *records: MigrationRecord) -> str:
    source = cache(origin, tmp_path, "writer")
    notes = Notes(source)
    for r in records:
        notes.record(source.head(), r)
    assert notes.push().pushed
    return source.head()


def test_status_command_shows_the_note_of_the_branch_head(
    origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCKGATE_CACHE_DIR", str(tmp_path / "status-cache"))
    monkeypatch.delenv("LOCKGATE_DSN", raising=False)
    head = published(origin, tmp_path, applied())

    assert cli.main(["status", "--repo", origin.url]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"commit {head}"
    assert out[3].split() == ["VERSION", "NAME", "OUTCOME", "DURATION"]
    assert out[4].split() == [V1, "add_customer_tier", "applied", "12.3s"]

    assert cli.main(["status", "--repo", origin.url, "--format", "json", head[:10]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["commit"] == head and shown["ledger"] is None
    assert shown["note"]["schema"] == 1 and shown["note"]["migrations"][0]["outcome"] == "applied"


def test_status_command_in_a_clone_and_for_a_failure(
    origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LOCKGATE_REPO", raising=False)
    monkeypatch.delenv("LOCKGATE_DSN", raising=False)
    head = published(origin, tmp_path, MigrationRecord(
        version=V1, name="add_customer_tier", outcome="failed", reason="validation gate 2 failed"))
    clone = origin.clone("reader")
    clone.git("fetch", "--quiet", "origin", "refs/notes/*:refs/notes/*")
    monkeypatch.chdir(clone.path)

    assert cli.main(["status"]) == 1

    out = capsys.readouterr().out
    assert f"commit {head}" in out and f"{V1}: validation gate 2 failed" in out
    assert cli.main(["status", "HEAD~0"]) == 1
    capsys.readouterr()
    assert cli.main(["status", "no-such-rev"]) == 2
    assert capsys.readouterr().err.strip() == "lockgate status: unknown revision 'no-such-rev'"


def test_status_command_without_a_note(
    origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCKGATE_CACHE_DIR", str(tmp_path / "status-cache"))
    assert cli.main(["status", "--repo", origin.url, "--dsn", "host=/nonexistent"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("no lockgate note on this commit")


def test_status_command_shows_the_ledger_beside_the_note(
    origin: Origin, tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCKGATE_CACHE_DIR", str(tmp_path / "status-cache"))
    head = published(origin, tmp_path, applied(), applied(V2, "second"))
    with psycopg.connect(db, autocommit=True) as conn:
        ledger = Ledger(conn, "lockgate")
        ledger.setup()
        ledger.begin({
            "version": V1, "name": "add_customer_tier", "commit_sha": head, "baseline": {},
            **{f"{k}_checksum": "0" * 64 for k in ("up", "down", "validate")},
            **{f"{k}_sql": "SELECT 1;" for k in ("up", "down", "validate")},
        })
        ledger.finish(V1, "applied", commit=head)

    assert cli.main(["status", "--repo", origin.url, "--dsn", db]) == 0

    rows = [line.split() for line in capsys.readouterr().out.splitlines()[3:6]]
    assert rows[0] == ["VERSION", "NAME", "OUTCOME", "DURATION", "LEDGER", "LEDGER", "COMMIT"]
    assert rows[1] == [V1, "add_customer_tier", "applied", "12.3s", "applied", head[:12]]
    assert rows[2] == [V2, "second", "applied", "12.3s", "(not", "in", "ledger)", "-"]
