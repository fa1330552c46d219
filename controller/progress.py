"""How far a batched backfill is: rows done, rows/s and ETA.

A progress bar (rich) when stderr is a terminal; otherwise plain log lines, one every
LOG_EVERY_S seconds, so a Job's log stays readable.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Protocol, TextIO

log = logging.getLogger(__name__)

LOG_EVERY_S = 10.0


@dataclass(slots=True)
class Meter:
    """Rates and ETA of this run; `keys_total` is an estimate of the keys still to do at start."""

    keys_total: int | None
    rows: int = 0
    keys: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, rows: int, keys: int) -> None:
        self.rows += rows
        self.keys += keys
        self.batches += 1

    def rows_per_s(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.rows / elapsed if elapsed > 0 else 0.0

    def eta_s(self) -> float | None:
        elapsed = time.monotonic() - self.started
        if not self.keys_total or not self.keys or elapsed <= 0:
            return None
        return max(self.keys_total - self.keys, 0) / (self.keys / elapsed)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class Progress(Protocol):
    def batch_done(self, rows: int, keys: int, batch_size: int) -> None: ...
    def close(self, completed: bool) -> None: ...


class LogLines:
    """One INFO line every LOG_EVERY_S seconds and one at the end."""

    def __init__(self, label: str, meter: Meter) -> None:
        self.label = label
        self.meter = meter
        self.last_line = meter.started

    def _line(self, batch_size: int | None, state: str) -> None:
        m = self.meter
        size = f", batch size {batch_size:,}" if batch_size is not None else ""
        log.info(
            "%s: %s %s rows in %s batches, %s rows/s%s, ETA %s",
            self.label, state, f"{m.rows:,}", m.batches, f"{m.rows_per_s():,.0f}", size, _clock(m.eta_s()),
        )
        self.last_line = time.monotonic()

    def batch_done(self, rows: int, keys: int, batch_size: int) -> None:
        self.meter.add(rows, keys)
        if time.monotonic() - self.last_line >= LOG_EVERY_S:
            self._line(batch_size, "did")

    def close(self, completed: bool) -> None:
        self._line(None, "finished," if completed else "stopped after")


class Bar:
    """A rich progress bar over the estimated keys, with rows done and rows/s beside it."""

    def __init__(self, label: str, meter: Meter, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.meter = meter
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[rows]}"),
            TimeRemainingColumn(), console=Console(file=stream), transient=False,
        )
        self.task = self.bar.add_task(label, total=meter.keys_total, rows="")
        self.bar.start()

    def batch_done(self, rows: int, keys: int, batch_size: int) -> None:
        self.meter.add(rows, keys)
        m = self.meter
        self.bar.update(self.task, advance=keys, rows=f"{m.rows:,} rows, {m.rows_per_s():,.0f} rows/s")

    def close(self, completed: bool) -> None:
        if completed:
            self.bar.update(self.task, completed=self.meter.keys_total or self.meter.keys)
        self.bar.stop()


def start(label: str, keys_total: int | None, stream: TextIO | None = None) -> Progress:
    """A bar on a terminal, log lines elsewhere."""
    stream = stream or sys.stderr
    meter = Meter(keys_total)
    if stream.isatty():
        return Bar(label, meter, stream)
    return LogLines(label, meter)
