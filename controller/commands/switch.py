"""The pause switch behind `lockgate pause` and `lockgate resume`."""

from __future__ import annotations

import argparse

from lockgate.controller import db
from lockgate.controller.checkpoints import ensure_tables, set_paused
from lockgate.controller.config import load


def flip(args: argparse.Namespace, *, paused: bool) -> int:
    settings = load(dsn=args.dsn)
    with db.connect(db.target_dsn(settings)) as conn:
        ensure_tables(conn, settings.ledger_schema)
        set_paused(conn, settings.ledger_schema, paused)
    state = "paused: running backfills wait after their current batch" if paused else "resumed"
    print(f"batched backfills {state}")
    return 0
