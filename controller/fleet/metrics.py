"""A fleet pass's per-target metrics, pushed to a Prometheus Pushgateway (the convention for batch
jobs: a CronJob's pod is gone before any scrape would reach it).

Per target: whether it ended in sync (labelled with how it ended), the pass's wall time on it, the
backfill batches it ran and their rows per second. A Pushgateway that does not answer costs a
warning line, never the pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

log = logging.getLogger(__name__)

JOB = "lockgate_fleet"


@dataclass(frozen=True, slots=True)
class TargetMetrics:
    name: str
    state: str  # in_sync, failed, interrupted, not_started
    duration_s: float
    batches: int
    rows: int


def registry_of(targets: Sequence[TargetMetrics]) -> CollectorRegistry:
    registry = CollectorRegistry()
    in_sync = Gauge("lockgate_fleet_target_in_sync", "1 when the target ended the pass in sync",
                    ["target", "state"], registry=registry)
    duration = Gauge("lockgate_fleet_target_duration_seconds", "wall time the pass spent on the target",
                     ["target"], registry=registry)
    batches = Gauge("lockgate_fleet_target_batches", "backfill batches the pass ran on the target",
                    ["target"], registry=registry)
    rate = Gauge("lockgate_fleet_target_rows_per_second", "backfilled rows per second of the pass on the target",
                 ["target"], registry=registry)
    for target in targets:
        in_sync.labels(target.name, target.state).set(target.state == "in_sync")
        duration.labels(target.name).set(target.duration_s)
        batches.labels(target.name).set(target.batches)
        rate.labels(target.name).set(target.rows / target.duration_s if target.duration_s > 0 else 0.0)
    return registry


def push(url: str, targets: Sequence[TargetMetrics]) -> None:
    try:
        push_to_gateway(url, job=JOB, registry=registry_of(targets), timeout=10)
    except OSError as exc:
        log.warning("metrics not pushed to %s: %s", url, exc)
