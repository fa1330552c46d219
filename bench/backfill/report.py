"""Numbers, plots and the markdown table of one benchmark run."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.backfill.variants import Trace
from bench.backfill.workload import Sample


@dataclass
class Outcome:
    name: str
    rows: int  # customers present when the backfill started
    seconds: float
    batches: int
    writer_ops: int
    writer_p50_ms: float
    writer_p99_ms: float
    writer_max_ms: float
    writer_p99_from_due_ms: float  # counted from when each operation was due (no coordinated omission)
    writer_over_50ms: int
    nulls_left: int
    mismatches: int
    timed: bool  # False: shown for its result only (the seed's loop as written is not correct)
    runs_s: list[float] = field(default_factory=list)  # every repetition's time, fastest first

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def us_per_row(self) -> float:
        return self.seconds / self.rows * 1e6 if self.rows else 0.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


def latency_ms(seconds: list[float]) -> tuple[float, float, float]:
    values = [s * 1000 for s in seconds]
    return percentile(values, 0.5), percentile(values, 0.99), max(values, default=0.0)


def _share(o: Outcome, writer_rate: float) -> str:
    due = writer_rate * o.seconds
    return f"{min(o.writer_ops / due, 1.0):.0%}" if due else "n/a"


def _all_runs(o: Outcome) -> str:
    return "[" + ", ".join(f"{s:.1f}" for s in o.runs_s) + "] " if len(o.runs_s) > 1 else ""


def markdown(outcomes: list[Outcome], reference: str, writer_rate: float) -> str:
    """One row per variant; "writer ops done" is the share of the writer's scheduled operations that
    ran while the backfill did (a writer stuck behind a lock stops issuing them)."""
    base = next(o for o in outcomes if o.name == reference)
    lines = [
        "| variant | rows | time (s), median [all runs] | rows/s | µs/row | vs plain UPDATE | batches | writer ops |"
        " writer ops done | writer p50 / p99 / max (ms) | writer p99 from due (ms) | writer ops > 50 ms |"
        " tiers NULL | tiers wrong |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        ratio = f"{o.rows_per_s / base.rows_per_s:.0%}" if o.timed else "n/a (wrong result)"
        lines.append(
            f"| {o.name} | {o.rows:,} | {o.seconds:.1f} {_all_runs(o)}| {o.rows_per_s:,.0f} | {o.us_per_row:.1f}"
            f" | {ratio} |"
            f" {o.batches} | {o.writer_ops:,} | {_share(o, writer_rate)}"
            f" | {o.writer_p50_ms:.1f} / {o.writer_p99_ms:.1f} / {o.writer_max_ms:.0f}"
            f" | {o.writer_p99_from_due_ms:.1f} | {o.writer_over_50ms} | {o.nulls_left:,} | {o.mismatches:,} |"
        )
    return "\n".join(lines) + "\n"


def plots(
    out: Path,
    customers: int,
    traces: dict[str, Trace],
    writers: dict[str, list[Sample]],
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    throughput = out / "throughput.png"
    fig, ax = plt.subplots(figsize=(10, 5))
    for name, trace in traces.items():
        if len(trace.batches) == 1:
            ended, rows, seconds = trace.batches[0]
            ax.hlines(rows / seconds, 0, ended, label=f"{name} (one statement)", linestyles="dashed")
        else:
            ax.plot([b[0] for b in trace.batches], [b[1] / b[2] for b in trace.batches], ".-", label=name,
                    markersize=3, linewidth=0.8)
    ax.set_xlabel("seconds since the backfill started")
    ax.set_ylabel("rows/s within each batch")
    ax.set_yscale("log")
    ax.set_title(f"Customer-tier backfill, {customers:,} customers: throughput per batch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(throughput, dpi=110)
    plt.close(fig)

    latency = out / "writer_latency.png"
    fig, axes = plt.subplots(len(writers), 1, figsize=(10, 2.2 * len(writers)), sharey=True)
    for ax, (name, samples) in zip(axes, writers.items(), strict=True):
        for kind, colour in (("insert", "tab:blue"), ("update", "tab:orange")):
            points = [s for s in samples if s.kind == kind]
            ax.scatter([s.finished for s in points], [s.service_s * 1000 for s in points], s=2, c=colour,
                       label=kind)
        ax.axhline(50, color="tab:red", linewidth=0.6, linestyle="dotted")
        ax.set_yscale("log")
        ax.set_ylabel("ms")
        ax.set_title(name, fontsize=9)
    axes[0].legend(loc="upper right", markerscale=4)
    axes[-1].set_xlabel("seconds since the backfill started")
    fig.suptitle(f"Concurrent writer latency (single-row INSERT/UPDATE on customers), {customers:,} customers")
    fig.tight_layout()
    fig.savefig(latency, dpi=110)
    plt.close(fig)
    return [throughput, latency]


def as_json(outcome: Outcome) -> dict[str, object]:
    return {**asdict(outcome), "rows_per_s": outcome.rows_per_s, "us_per_row": outcome.us_per_row}
