"""Ownership on a real Redis: a member busy handing a partition over keeps its lease.

Found by the soak's fleet mode: giving a partition up (its workers stopped,
its feeds' last changes sent, its sinks closed) takes seconds, on the
ownership thread; a lease renewed only by that thread ran out meanwhile, so
the member dropped its *other* partitions ("its lease could not be
renewed") and its membership expired, and the fleet flapped.
"""

from __future__ import annotations

import threading
import time

from synchronizer.fleet.ownership import Ownership
from tests.functional.fleet.test_failover import wait

TIMEOUT = 3
LEASE_LOST = "its lease could not be renewed"


class Recorder:
    """on_gain / on_lose callbacks; losing a partition takes ``lose_seconds``."""

    def __init__(self, lose_seconds: float) -> None:
        self.lose_seconds = lose_seconds
        self.held: set[str] = set()
        self.lost: list[tuple[str, str]] = []
        self.planned: list[str] = []  # the partitions handed over, rather than lost
        self.lock = threading.Lock()

    def gain(self, name: str) -> bool:
        with self.lock:
            self.held.add(name)
        return True

    def lose(self, name: str, why: str, planned: bool) -> None:
        with self.lock:
            self.lost.append((name, why))
            if planned:
                self.planned.append(name)
        time.sleep(self.lose_seconds)
        with self.lock:
            self.held.discard(name)


def test_a_slow_hand_over_does_not_cost_the_member_its_other_partitions(redis):
    """One partition handed over in 1.5 x the lease: the member keeps the other one."""
    slow = Recorder(lose_seconds=1.5 * TIMEOUT)
    first = Ownership(redis.url, "a", ["p1", "p2"], slow.gain, slow.lose, timeout=TIMEOUT)
    fast = Recorder(lose_seconds=0.0)
    second = Ownership(redis.url, "b", ["p1", "p2"], fast.gain, fast.lose, timeout=TIMEOUT)
    first.start()
    try:
        wait(lambda: slow.held == {"p1", "p2"}, 20, "the first member to hold both")
        second.start()
        wait(lambda: len(fast.held) == 1, 30, "the second member to take its share")
        time.sleep(2 * TIMEOUT)  # the hand-over is over; the first must hold the rest
        kept = {"p1", "p2"} - fast.held
        assert [why for _, why in slow.lost if why == LEASE_LOST] == []
        assert slow.held == kept
        assert first.held() == sorted(kept)
        assert slow.planned == sorted(fast.held)  # handed over, its term still valid
        assert fast.lost == []
    finally:
        second.stop()
        first.stop()


def test_a_hung_coordinator_stops_every_partition_within_the_lease(redis):
    """Redis paused: both partitions are given up in time, not one per hung lock release."""
    rec = Recorder(lose_seconds=0.0)
    member = Ownership(redis.url, "a", ["p1", "p2"], rec.gain, rec.lose, timeout=TIMEOUT)
    member.start()
    try:
        wait(lambda: rec.held == {"p1", "p2"}, 20, "the member to hold both")
        redis.pause()
        try:
            wait(lambda: not rec.held, TIMEOUT + 2, "both partitions given up")
            assert sorted(why for _, why in rec.lost) == [LEASE_LOST, LEASE_LOST]
            assert rec.planned == []
        finally:
            redis.resume()
    finally:
        member.stop()


class FailsOnce(Recorder):
    """on_gain raises the first time (a database gone between the claim and the feeds)."""

    def __init__(self) -> None:
        super().__init__(lose_seconds=0.0)
        self.calls = 0

    def gain(self, name: str) -> bool:
        with self.lock:
            self.calls += 1
            if self.calls == 1:
                raise OSError("connection refused")
        return super().gain(name)


def test_a_partition_whose_start_raised_is_given_back_and_taken_again(redis):
    """on_gain raising leaves no lock held with nothing running: released, retried, running."""
    rec = FailsOnce()
    member = Ownership(redis.url, "a", ["p1"], rec.gain, rec.lose, timeout=TIMEOUT)
    member.start()
    try:
        wait(lambda: rec.held == {"p1"}, 20, "the partition to run after the failed start")
        assert rec.calls == 2
        assert member.held() == ["p1"]
        assert [why for _, why in rec.lost] == ["it could not start"]
    finally:
        member.stop()
