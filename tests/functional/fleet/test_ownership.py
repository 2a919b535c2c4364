"""Ownership on a real Redis: handing a partition over does not cost the ones a member keeps.

Two :class:`~synchronizer.fleet.ownership.Ownership` instances in this
process, on a Redis of the test's own; their ``on_lose`` takes as long as
stopping a partition's workers can (a collector's watchdog waits 2 s for
a listing in progress, then its feeds and sinks stop).
"""

from __future__ import annotations

import threading
import time

from synchronizer.fleet.ownership import Ownership
from synchronizer.fleet.partitions import assign

TIMEOUT = 3
PARTITIONS = ["cinder", "neutron", "nova"]
SLOW_LOSE = 2.5  # seconds: more than the lease minus one period (3 - 1)


class Recorder:
    """on_gain / on_lose of one member: what it gained and lost, and why."""

    def __init__(self, lose_takes: float = 0.0) -> None:
        self.lose_takes = lose_takes
        self.held: set[str] = set()
        self.lost: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def gain(self, name: str) -> bool:
        with self.lock:
            self.held.add(name)
        return True

    def lose(self, name: str, why: str) -> None:
        time.sleep(self.lose_takes)
        with self.lock:
            self.held.discard(name)
            self.lost.append((name, why))


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_slow_handover_keeps_the_partitions_that_stay(redis):
    """A member giving a partition up slowly keeps renewing the leases of those it keeps."""
    first, second = Recorder(lose_takes=SLOW_LOSE), Recorder()
    a = Ownership(redis.url, "a", PARTITIONS, first.gain, first.lose, timeout=TIMEOUT)
    a.start()
    b = None
    try:
        wait(lambda: first.held == set(PARTITIONS), 10, "the first member to own all")
        b = Ownership(redis.url, "b", PARTITIONS, second.gain, second.lose, timeout=TIMEOUT)
        b.start()
        owners = assign(PARTITIONS, ["a", "b"])
        kept = {p for p, m in owners.items() if m == "a"}
        moved = set(PARTITIONS) - kept
        wait(lambda: second.held == moved, 20, "the second member to gain its share")
        time.sleep(2 * TIMEOUT)  # long enough for a lease that was not renewed to run out
        assert first.held == kept
        assert first.lost == [(p, "it is assigned to another member") for p in sorted(moved)]
    finally:
        a.stop()
        if b is not None:
            b.stop()
