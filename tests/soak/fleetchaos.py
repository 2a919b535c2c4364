"""The faults a fleet adds to the soak's, and what each moved.

:class:`FleetChaos` runs every episode of :class:`~tests.soak.chaos.Chaos`
against a :class:`~tests.soak.fleet.Fleet` (the journal of every member
stands in for the daemon's log: a killed worker is the latest of its name,
on whichever member runs it) and adds:

=======================  ==========================================================
kind                     episode
=======================  ==========================================================
``owner_kill``           SIGKILL of a partition owner and its workers (a host gone);
                         its partitions fail over; it is started again
``owner_pause``          SIGSTOP of an owner and its workers past its lease, held
                         until its partitions have new owners, then SIGCONT: it
                         must give them up, and nothing of its old term may reach
                         a consumer (the wire checks)
``coordinator_restart``  the fleet's Redis stopped for 1 s and started empty
``coordinator_pause``    the fleet's Redis SIGSTOPped past the lease, then SIGCONT
``daemon_restart``       (the fleet's form) SIGTERM of a member, started again; the
                         checker consumer resumes from its per-partition position
=======================  ==========================================================

After an episode that moves ownership (:data:`MOVES`) the chaos waits
until the fleet has settled again (every partition held by the member the
full fleet assigns it to, its database owner) and keeps the window, so
the ownership checks know when partitions may be in motion.  A failover
is timed from the signal until every partition of the victim has another
owner with a higher term in the database.

Threading: one thread runs episodes, as for the base class.
"""

from __future__ import annotations

import dataclasses
import datetime
import random
import re
import signal
import time

from synchronizer.workers.notification import STATS_INTERVAL
from synchronizer_fakecloud.server import FakeCloud
from tests.soak import probes
from tests.soak.chaos import KINDS, Chaos, Episode, _wait
from tests.soak.fleet import MEMBERS, Fleet
from tests.soak.nova_events import BAD_PAYLOADS
from tests.soak.probes import Broker
from tests.soak.publisher import NovaPublisher
from tests.soak.setup import HEARTBEAT_TIMEOUT, PARTITIONS

FLEET_KINDS = ("owner_kill", "owner_pause", "coordinator_restart", "coordinator_pause")
#: Episodes during which partitions change hands.
MOVES = frozenset({*FLEET_KINDS, "daemon_restart"})
#: The ownership loop's period (tooz heart-beats three times per timeout).
OWNERSHIP_PERIOD = HEARTBEAT_TIMEOUT / 3
#: A failover's bound beyond the lease and one period: the last beat before
#: the signal, the survivors' claim and gain, a loaded machine (2 cores, a
#: load average near 20 measured at 9.9 s for 5 + 1.7).
FAILOVER_SLACK = 5.0
FAILOVER_BOUND = HEARTBEAT_TIMEOUT + OWNERSHIP_PERIOD + FAILOVER_SLACK
SETTLE_TIMEOUT = 90.0
_DROPPED = "synchronizer_notifications_by_outcome_total"


@dataclasses.dataclass(frozen=True)
class Failover:
    """One owner gone (killed or paused): its partitions and how long they took to move."""

    kind: str
    member: str
    partitions: tuple[str, ...]
    seconds: float | None  # None: they did not move within the wait
    started: float = 0.0  # wall clock of the signal


class FleetChaos(Chaos):
    """The soak's chaos against a fleet (see the module docstring)."""

    kinds = (*KINDS, *FLEET_KINDS)

    def __init__(
        self,
        cloud: FakeCloud,
        fleet: Fleet,
        broker: Broker,
        publisher: NovaPublisher,
        rng: random.Random,
        client_timeout: float,
    ) -> None:
        super().__init__(cloud, fleet, broker, publisher, rng, client_timeout)  # type: ignore[arg-type]
        self.fleet = fleet
        self.windows: list[tuple[float, float]] = []
        self.failovers: list[Failover] = []
        self.settles: list[tuple[str, float | None]] = []
        self.exits: list[int | None] = []
        self.nova_handovers = 0  # set by the runner at the end: the nova term's rises
        self.nova_term = fleet.owners().get("nova", (None, 0))[1]

    def run(self, kind: str) -> None:
        started = time.time()
        super().run(kind)
        if kind in MOVES:
            took = self.fleet.wait_settled(SETTLE_TIMEOUT)
            self.settles.append((kind, took))
            if took is None:
                self.errors.append(f"{kind}: the fleet did not settle within {SETTLE_TIMEOUT} s")
            self.windows.append((started, time.time()))

    def finish(self) -> None:
        """Read what the run moved (before the fleet stops)."""
        self.nova_handovers = self.fleet.owners().get("nova", (None, 0))[1] - self.nova_term

    def uncounted(self, window: int) -> tuple[int, str]:
        # A hand-over of the nova partition stops (or kills, or freezes) its
        # notification worker: what it took since its last report, and what a
        # successor took before being stopped in turn, is counted by nobody
        # (those pushes go with it; the polls carry the states).
        spans = motion(self.fleet.logs, self._gone("nova"))
        n = sum(1 for at in self.publisher.sent_at if any(a <= at <= b for a, b in spans))
        seconds = sum(b - a for a, b in spans)
        return n, f"published during {len(spans)} nova hand-overs, {seconds:.0f} s in motion"

    def _gone(self, partition: str) -> list[float]:
        """When a holder of the partition was killed or frozen (it logged nothing then)."""
        return [x.started for x in self.failovers if partition in x.partitions]

    # -- helpers -----------------------------------------------------------

    def carry_member(self, name: str) -> None:
        self.carry(self.fleet.metrics_urls[name])

    def _owner(self) -> tuple[str, dict[str, int]]:
        """A member that owns partitions, and ``partition → term`` of those it owns."""
        owners = self.fleet.owners()
        victim = self.rng.choice(sorted({m for m, _ in owners.values() if m}))
        return victim, {p: t for p, (m, t) in owners.items() if m == victim}

    def _failover(
        self, kind: str, victim: str, theirs: dict[str, int], t0: float, wall: float
    ) -> Failover:
        def moved() -> bool:
            now = self.fleet.owners()
            return all(
                now.get(p, (victim, 0))[0] != victim and now[p][1] > term
                for p, term in theirs.items()
            )

        done = _wait(moved, FAILOVER_BOUND + 20)
        seconds = round(time.monotonic() - t0, 2) if done else None
        failover = Failover(kind, victim, tuple(sorted(theirs)), seconds, wall)
        self.failovers.append(failover)
        return failover

    # -- episodes ------------------------------------------------------------

    def _owner_kill(self) -> Episode:
        victim, theirs = self._owner()
        self.carry_member(victim)
        t0, wall = time.monotonic(), time.time()
        self.fleet.kill(victim)
        failover = self._failover("owner_kill", victim, theirs, t0, wall)
        self.fleet.restart(victim)
        return Episode(
            "owner_kill",
            victim,
            wall,
            failover.seconds is not None,
            f"{', '.join(failover.partitions)}: failover {failover.seconds} s",
        )

    def _owner_pause(self) -> Episode:
        victim, theirs = self._owner()
        member = self.fleet.members[victim]
        gave_up = member.count_logs("gives it up")
        t0, wall = time.monotonic(), time.time()
        self.fleet.signal(victim, signal.SIGSTOP)
        try:
            failover = self._failover("owner_pause", victim, theirs, t0, wall)
            time.sleep(2.0)  # the new owners commit under their terms while it sleeps
        finally:
            self.fleet.signal(victim, signal.SIGCONT)
        woke = member.wait_until(
            lambda: member.count_logs("gives it up") >= gave_up + len(theirs),
            3 * HEARTBEAT_TIMEOUT + 10,
        )
        if not woke:
            self.errors.append(f"owner_pause: {victim} did not give up {sorted(theirs)} on waking")
        return Episode(
            "owner_pause",
            victim,
            wall,
            failover.seconds is not None and woke,
            f"{', '.join(failover.partitions)}: failover {failover.seconds} s, "
            f"paused {time.monotonic() - t0:.1f} s",
        )

    def _every_partition_given_up(self, before: int, timeout: float) -> bool:
        """Whether every partition was given up once since ``before`` "gives it up" lines
        (every lock was lost): only then may the fleet be settled again."""
        want = before + len(PARTITIONS)
        return self.fleet.wait_until(lambda: self.fleet.count_logs("gives it up") >= want, timeout)

    def _coordinator_restart(self) -> Episode:
        wall = time.time()
        gave_up = self.fleet.count_logs("gives it up")
        self.fleet.redis.stop()
        time.sleep(1.0)
        self.fleet.redis.start()
        # Restarted empty: every lock is gone, and every holder must notice.
        fired = self._every_partition_given_up(gave_up, 30)
        return Episode("coordinator_restart", "redis", wall, fired, "down 1 s, restarted empty")

    def _coordinator_pause(self) -> Episode:
        wall = time.time()
        gave_up = self.fleet.count_logs("gives it up")
        self.fleet.redis.pause()
        try:
            # Past the lease: every holder stops what it cannot renew.
            fired = self._every_partition_given_up(gave_up, HEARTBEAT_TIMEOUT + 10)
            time.sleep(1.0)
        finally:
            self.fleet.redis.resume()
        return Episode("coordinator_pause", "redis", wall, fired, "SIGSTOP past the lease")

    def _daemon_restart(self) -> Episode:
        name = self.rng.choice(MEMBERS)
        self.carry_member(name)
        wall = time.time()
        code = self.fleet.terminate(name)
        self.exits.append(code)
        if code != 0:
            self.errors.append(f"daemon_restart: {name} exited {code} on SIGTERM")
        self.fleet.restart(name)
        up = _wait(lambda: self.fleet.health(name) is not None, 120)
        if up:
            self.on_daemon_restart()
        else:
            self.errors.append(f"daemon_restart: {name} did not answer /healthz within 120 s")
        return Episode("daemon_restart", name, wall, up, f"SIGTERM, exit {code}")

    def _bad_notification(self) -> Episode:
        # Wait until the drops are counted: a hand-over of nova right after would
        # take its notification worker's report with it.
        def dropped() -> float:
            _, samples = self.fleet.metrics()
            carried = sum(v for (n, lab), v in self.carried.items() if n == _DROPPED and
                          ("outcome", "dropped") in lab)  # fmt: skip
            return probes.total(samples, _DROPPED, outcome="dropped") + carried

        before = dropped()
        episode = super()._bad_notification()
        if not _wait(lambda: dropped() >= before + len(BAD_PAYLOADS), 20):
            episode.detail += "; not all counted within 20 s"
        return episode


_STAMP = re.compile(r"^m\d\| (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")
_GIVES_UP = "Partition nova: this member gives it up"
_LISTENING = "Listening for"  # only the nova partition has a notification worker


def _stamp(line: str) -> float | None:
    match = _STAMP.match(line)
    return datetime.datetime.fromisoformat(match.group(1)).timestamp() if match else None


def motion(logs: list[str], gone: list[float]) -> list[tuple[float, float]]:
    """The spans in which nova's notifications may go counted by nobody.

    From one report interval before its worker stopped (its holder gave it
    up, or was killed or frozen at ``gone``) until one interval after a
    successor listened: that successor's first report counts what was
    queued meanwhile (if it lives that long; else the next span joins on).
    """
    stops = sorted([*gone, *(t for line in logs if _GIVES_UP in line if (t := _stamp(line)))])
    listens = sorted(t for line in logs if _LISTENING in line if (t := _stamp(line)))
    spans: list[tuple[float, float]] = []
    for stop in stops:
        start = stop - STATS_INTERVAL - 1.0
        end = next((t for t in listens if t > stop), stop) + STATS_INTERVAL + 1.0
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans
