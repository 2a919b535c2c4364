"""Who owns which partition: tooz group membership, an assignment, one lock per partition.

Every member joins the tooz group and, every ``heartbeat_timeout / 3``
seconds, heart-beats (which also renews the locks it holds; on a thread of
its own, so that a partition taking seconds to start or stop does not let
the lease of the others run out).  Four times as often it runs the group's
watchers and reads the membership (no heartbeat: a lease renewed more often
would only run out later after its owner died), so that a partition whose
owner's lease ran out is taken within a quarter period of it, not a whole
one (one small read per member and cycle).  From the membership each
member computes the same assignment (:func:`~synchronizer.fleet.partitions.assign`)
and then, for each partition:

* assigned to it and not held: it tries the partition's tooz lock without
  blocking; once acquired it *gains* the partition (``on_gain``);
* held but assigned elsewhere (a member joined): it *loses* it first
  (``on_lose`` with ``planned``: workers stopped, what they had taken
  dispatched, the last batch committed) and then releases the lock, so
  the new owner acquires it only after the old one stopped; the same
  when the member stops;
* held but the lock is no longer its own (its lease ran out while it was
  paused or cut off), or it could not renew for longer than the lease
  minus one period: it loses it without waiting for anybody.

A lock only says who *should* write; the term in the shared store
(:meth:`~synchronizer.dispatch.sql.SQLStore.claim`) is what refuses a
late writer, since a lock's lease can run out under a member that is
paused and does not know it yet.

The lock and the membership expire ``heartbeat_timeout`` after the last
heartbeat (tooz's ``timeout`` and ``lock_timeout`` on Redis), so a killed
owner's partitions move within that timeout plus one period.  A member
that cannot reach the coordinator at start owns nothing until it can
(never "everything", as Aodh's evaluators fall back to).

Threading: one thread of its own calls ``on_gain`` and ``on_lose``, the
lease watch calls ``on_lose`` too (so the callbacks must serialize a
partition's gain and loss: a loss under way when the loop gains it again);
another thread heart-beats; ``release(name)`` (a partition fenced or
failed) from any thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING

from synchronizer.fleet.partitions import assign

if TYPE_CHECKING:
    from tooz import coordination

LOG = logging.getLogger(__name__)

__all__ = ["Ownership", "lease_url"]


def lease_url(url: str, timeout: int) -> str:
    """``url`` with tooz's ``timeout`` and ``lock_timeout`` set, unless it sets them."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.setdefault("timeout", str(timeout))
    query.setdefault("lock_timeout", str(timeout))
    query.setdefault("membership_timeout", str(timeout))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


class Ownership:
    """Keeps this member's share of the partitions, through a tooz coordinator."""

    def __init__(
        self,
        backend_url: str,
        member_id: str,
        partitions: list[str],
        on_gain: Callable[[str], bool],
        on_lose: Callable[[str, str, bool], None],
        *,
        group: str = "synchronizer",
        timeout: int = 10,
    ) -> None:
        """``on_gain(name)`` returns False when the partition could not start.

        ``on_lose(name, why, planned)``: ``planned`` when the partition is
        handed over (assigned elsewhere, the member stops) while its lock
        and term still hold, so that what its workers had taken can still
        be committed; not when it is lost (lease, refused write, failed start).
        """
        self.url = lease_url(backend_url, timeout)
        self.member_id = member_id
        self.partitions = list(partitions)
        self.group = group.encode()
        self.timeout = timeout
        self.period = timeout / 3.0
        self.interval = self.period / 4.0  # the loop's: membership read, locks tried
        self._on_gain, self._on_lose = on_gain, on_lose
        self._coord: coordination.CoordinationDriver | None = None
        self._locks: dict[str, object] = {}
        self._released: set[str] = set()
        self._renewed = 0.0  # monotonic time of the last successful heartbeat
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ownership", daemon=True)
        self.members: list[str] = []
        self.connected = False

    def start(self) -> None:
        self._thread.start()
        # A coordinator that hangs (paused, a half-open connection) blocks the
        # loop's calls: the lease is watched from a thread that calls nobody.
        threading.Thread(target=self._watch, name="ownership-lease", daemon=True).start()
        threading.Thread(target=self._beat, name="ownership-heart", daemon=True).start()

    def _beat(self) -> None:
        """Renew the membership and the locks every period, whatever the loop is doing.

        Giving a partition up (workers stopped, the last changes sent) runs on
        the loop's thread and can take longer than the lease's margin; renewed
        only there, the lease would run out under a member that is merely busy.
        A failed beat leaves ``_renewed`` as it was: the lease watch decides.
        """
        while not self._stop.wait(self.period):
            coord = self._coord
            if coord is None:
                continue
            try:
                self._renew(coord)
            except Exception as exc:  # noqa: BLE001 - the loop reports the coordinator
                LOG.debug("Heartbeat failed: %s", exc)

    def _renew(self, coord: coordination.CoordinationDriver) -> list[str]:
        """Heart-beat, and count the lease renewed only once the coordinator answered.

        Some drivers' ``heartbeat()`` never reaches the server (ZooKeeper's:
        kazoo keeps the session alive by itself, and says nothing when it
        cannot), so a read of the group's members stands as the proof; they
        are returned, sorted (none: the group is gone, an answer all the
        same, from a coordinator that restarted empty).
        """
        started = time.monotonic()
        coord.heartbeat()
        members = self._members(coord)
        self._renewed = max(self._renewed, started)
        return members

    def _members(self, coord: coordination.CoordinationDriver) -> list[str]:
        from tooz import coordination

        try:
            return sorted(m.decode() for m in coord.get_members(self.group).get())
        except coordination.GroupNotCreated:
            return []

    def _watch(self) -> None:
        while not self._stop.wait(self.period / 2):
            if self._locks and time.monotonic() - self._renewed > self.timeout - self.period:
                self._lose_all("its lease could not be renewed")

    def stop(self, timeout: float = 5.0) -> None:
        """Lose every partition (stopping its workers), release, leave the group."""
        import tooz

        self._stop.set()
        self._thread.join(timeout)
        self._lose_some(list(self._locks), "the member stops", planned=True)
        if self._coord is not None:
            try:
                self._coord.leave_group(self.group).get()
                self._coord.stop()
            except tooz.ToozError as exc:
                LOG.warning("Leaving the coordination group failed: %s", exc)

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._locks)

    def release(self, name: str) -> None:
        """Give a partition up at the next period (it was fenced, or its store failed)."""
        with self._lock:
            self._released.add(name)

    # -- the loop ---------------------------------------------------------------

    def _run(self) -> None:
        import tooz

        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._cycle()
            except tooz.ToozError as exc:
                self._unreachable(exc)
            except Exception:
                LOG.exception("Ownership cycle failed; it goes on")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _cycle(self) -> None:

        coord = self._connect()
        # Heart-beat at the heartbeat's pace, not the loop's: a lease renewed
        # more often would only run out later after its owner died.
        if time.monotonic() - self._renewed >= self.period:
            members = self._renew(coord)
        else:
            members = self._members(coord)
        coord.run_watchers()
        if self.member_id not in members:
            # A coordinator restarted empty, or our membership expired: join again.
            _join(coord, self.group)
            members = sorted({*members, self.member_id})
        if not self.connected or members != self.members:
            LOG.info("Fleet members: %s", ", ".join(members))
        self.connected, self.members = True, members
        owners = assign(self.partitions, members)
        for name in self.partitions:
            self._settle(coord, name, owners.get(name) == self.member_id)

    def _settle(self, coord: coordination.CoordinationDriver, name: str, mine: bool) -> None:
        lock = self._locks.get(name)
        with self._lock:
            released = name in self._released
            self._released.discard(name)
        if lock is not None:
            if released:
                self._lose(name, "its store refused or failed a write")
            elif not mine:
                self._lose(name, "it is assigned to another member", planned=True)
            elif not _still_owner(lock):
                self._lose(name, "its lock expired (this member was paused or cut off)")
            return
        if not mine:
            return
        lock = coord.get_lock(f"synchronizer-partition-{name}".encode())
        if not lock.acquire(blocking=False):
            return
        with self._lock:
            self._locks[name] = lock
        LOG.info("Partition %s: this member (%s) is its owner now", name, self.member_id)
        try:
            started = self._on_gain(name)
        except Exception:
            # Held and not run, the partition would stay dead: give it back.
            LOG.exception("Partition %s: starting it failed", name)
            started = False
        if not started:
            self._lose(name, "it could not start")

    def _lose(self, name: str, why: str, *, planned: bool = False) -> None:
        self._lose_some([name], why, planned=planned)

    def _lose_all(self, why: str) -> None:
        self._lose_some(list(self._locks), why)

    def _lose_some(self, names: list[str], why: str, *, planned: bool = False) -> None:
        """Stop each of these partitions (``on_lose``), then release their locks.

        In that order: a coordinator that hangs blocks a release, and the
        partitions after the first must not run on past their lease for it.
        """
        taken: list[tuple[str, object]] = []
        try:
            for name in names:
                with self._lock:
                    lock = self._locks.pop(name, None)
                if lock is None:
                    continue
                taken.append((name, lock))
                LOG.warning("Partition %s: this member gives it up: %s", name, why)
                self._on_lose(name, why, planned)
        finally:
            for name, lock in taken:
                self._release(name, lock)

    def _release(self, name: str, lock: object) -> None:
        import tooz

        try:
            lock.release()  # type: ignore[attr-defined]
        except tooz.ToozError as exc:
            LOG.info("Partition %s: its lock could not be released (%s)", name, exc)

    def _unreachable(self, exc: Exception) -> None:
        """The coordinator does not answer: keep what the lease still covers."""
        if self.connected:
            LOG.warning("The coordinator is unreachable (%s); holding %s", exc, self.held())
        self.connected = False
        if self._locks and time.monotonic() - self._renewed > self.timeout - self.period:
            self._lose_all("its lease could not be renewed")

    def _connect(self) -> coordination.CoordinationDriver:
        from tooz import coordination

        if self._coord is not None:
            return self._coord
        coord = coordination.get_coordinator(self.url, self.member_id.encode())
        coord.start(start_heart=False)
        self._coord = coord
        return coord


def _join(coord: coordination.CoordinationDriver, group: bytes) -> None:
    from tooz import coordination

    with contextlib.suppress(coordination.GroupAlreadyExist):
        coord.create_group(group).get()
    with contextlib.suppress(coordination.MemberAlreadyExist):
        coord.join_group(group).get()


def _still_owner(lock: object) -> bool:
    """Whether the lock is still ours (the drivers that can tell; others trust the session)."""
    import tooz

    check = getattr(lock, "is_still_owner", None)
    if check is None:
        return True
    try:
        return bool(check())
    except tooz.ToozError:
        return False
