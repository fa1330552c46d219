"""Waves in order, up to `parallel` targets of a wave at once, halting at `max_failures`.

A wave starts only when every target of the previous wave ended in sync. Within a wave, once
`max_failures` targets have failed no further target starts; those running finish (or stop
resumably when the pass is stopped). What runs a target is the caller's: the scheduler only
decides what starts when.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Literal

from lockgate.controller.fleet.config import Target, Wave

Ended = Literal["in_sync", "failed", "interrupted"]
State = Ended | Literal["not_started"]


def order(waves: Sequence[Wave], *, reverse: bool) -> list[Wave]:
    """The waves as they run: as written, or for rollbacks last wave first, last target first."""
    if not reverse:
        return list(waves)
    return [w.model_copy(update={"targets": w.targets[::-1]}) for w in reversed(waves)]


def run_waves(waves: Sequence[Wave], work: Callable[[Target], Ended], stop: threading.Event) -> dict[str, State]:
    """Each target's state once the waves are done: `work` runs one target and says how it ended."""
    states: dict[str, State] = {t.name: "not_started" for w in waves for t in w.targets}
    for wave in waves:
        if stop.is_set() or not _run_wave(wave, work, stop, states):
            break
    return states


def _run_wave(wave: Wave, work: Callable[[Target], Ended], stop: threading.Event, states: dict[str, State]) -> bool:
    """Run one wave; True when all its targets ended in sync."""
    todo = iter(wave.targets)
    failures = 0
    with ThreadPoolExecutor(max_workers=wave.parallel, thread_name_prefix=f"fleet-{wave.name}") as pool:
        running: dict[Future[Ended], Target] = {}
        while True:
            while len(running) < wave.parallel and failures < wave.max_failures and not stop.is_set():
                target = next(todo, None)
                if target is None:
                    break
                running[pool.submit(work, target)] = target
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                ended = future.result()
                states[running.pop(future).name] = ended
                failures += ended == "failed"
    return all(states[t.name] == "in_sync" for t in wave.targets)
