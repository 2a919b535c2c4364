"""Three real daemons as one fleet: a real Redis or ZooKeeper (tooz), PostgreSQL, the fake cloud.

Partitions ``nova`` (nova.instance) and ``cinder`` (cinder.volume); every
daemon writes what its partitions' feeds send to its stdout (jsonl sink),
so the union of the three stdouts is what a consumer of the stream got.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from synchronizer.dispatch import sql
from synchronizer_fakecloud.server import FakeCloud
from tests.helpers.cloudconf import service_credentials
from tests.helpers.daemon import Daemon

TIMEOUT = 3  # [coordination] heartbeat_timeout, seconds
PERIOD = 1.0  # every collector's period
MEMBERS = ("m1", "m2", "m3")


@pytest.fixture
def fleet(cloud, coordinator, database, tmp_path) -> Iterator[dict[str, Daemon]]:
    cloud.reset()
    cloud.populate(servers=12, hosts=2, volumes=6)
    daemons = {}
    for member in MEMBERS:
        path = tmp_path / f"{member}.conf"
        path.write_text(
            "\n".join(
                [
                    "[DEFAULT]",
                    "plugins = nova.instance, cinder.volume",
                    "sinks = jsonl",
                    "jsonl_path = -",
                    "worker_restart_delay = 0.2",
                    "[coordination]",
                    f"backend_url = {coordinator.url}",
                    f"heartbeat_timeout = {TIMEOUT}",
                    f"member_id = {member}",
                    "[database]",
                    f"connection = {database}",
                    *service_credentials(cloud, timeout=5),
                    "[nova.instance]",
                    f"period = {PERIOD}",
                    "[cinder.volume]",
                    f"period = {PERIOD}",
                ]
            )
            + "\n"
        )
        daemons[member] = Daemon(path).start()
    yield daemons
    for d in daemons.values():
        _cont(d)
        d.stop(timeout=15)


def _cont(d: Daemon) -> None:
    if d.proc and d.proc.poll() is None:
        for pid in [d.proc.pid, *d.worker_pids()]:
            os.kill(pid, signal.SIGCONT)


def wait(predicate, timeout: float, what: str):
    """The predicate's first true value, within ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return found


def view(engine, prefix: str) -> dict[str, str]:
    """key → state of the live entities of a type, as the shared store holds them."""
    import orjson
    import sqlalchemy as sa

    t = sql.entities
    query = sa.select(t.c.key, t.c.doc).where(t.c.type == prefix, t.c.action != "delete")
    with engine.connect() as conn:
        return {k: orjson.loads(doc)["state"] for k, doc in conn.execute(query)}


def cloud_view(cloud: FakeCloud) -> dict[str, str]:
    return {k: cloud.get("servers", k)["status"] for k in cloud.keys("servers")}


def stream(daemons: dict[str, Daemon], type_: str) -> dict[int, list[dict]]:
    """seq → every record of that seq the consumers got, from all members."""
    got: dict[int, list[dict]] = {}
    for d in daemons.values():
        with d._cond:
            for r in d.records:
                if r.get("type") == type_:
                    got.setdefault(r["seq"], []).append(r)
    return got


def check_stream(daemons, engine, type_: str) -> None:
    """No gap, repeats only of one seq's very change, and it replays to the store's view."""
    got = stream(daemons, type_)
    seqs = sorted(got)
    assert seqs == list(range(1, seqs[-1] + 1)), "a seq is missing from the stream"
    replay: dict[str, str] = {}
    for seq in seqs:
        first, *repeats = got[seq]
        assert all(r == first for r in repeats), f"seq {seq} was sent with two contents"
        if first["action"] == "delete":
            replay.pop(first["key"], None)
        else:
            replay[first["key"]] = first["state"]
    assert replay == view(engine, type_)


def owners(engine) -> dict[str, tuple[str | None, int]]:
    return sql.owners(engine)


def running(fleet: dict[str, Daemon], engine, partition: str) -> tuple[str, int] | None:
    """The partition's owner and term once every member has joined and that owner runs it.

    The store's row names the last member that claimed it; right after the
    others join, that member may be giving it up to the one it is now
    assigned to, so a test that needs "the owner" waits for this instead.
    """
    if not all(any("Fleet members: m1, m2, m3" in line for line in d.logs) for d in fleet.values()):
        return None
    owner, term = owners(engine).get(partition, (None, 0))
    if owner not in fleet:
        return None
    lines = [line for line in fleet[owner].logs if f"Partition {partition}: " in line]
    if not lines or f"running, term {term}," not in lines[-1]:
        return None
    return owner, term


def settled(engine, cloud) -> bool:
    return view(engine, "nova.instance") == cloud_view(cloud)


def test_one_owner_each_and_a_killed_owner_is_replaced_in_time(fleet, cloud, database):
    """SIGKILL of the Nova owner: another takes over within the heartbeat timeout + a period."""
    engine = sql.create_engine(database)
    wait(lambda: set(owners(engine)) == {"nova", "cinder"}, 60, "both partitions owned")
    # The first member up owns both until the others join; then they spread.
    wait(lambda: len({o for o, _ in owners(engine).values()}) == 2, 20, "spread")
    wait(lambda: settled(engine, cloud), 60, "the nova view to equal the cloud")
    owner, term = wait(lambda: running(fleet, engine, "nova"), 30, "the nova owner to run it")
    assert owner in MEMBERS
    cloud.change("servers", count=3, seed=1)
    wait(lambda: settled(engine, cloud), 30, "the changes to be committed")
    victim = fleet[owner]
    for pid in [*victim.worker_pids(), victim.proc.pid]:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    changed = cloud.change("servers", count=3, seed=2)
    assert changed
    wait(lambda: owners(engine)["nova"][0] != owner, 30, "a new nova owner")
    wait(lambda: settled(engine, cloud), 30, "the new owner to commit the changes")
    failover = time.monotonic() - killed
    _, new_term = owners(engine)["nova"]
    assert new_term > term
    print(f"B11 failover {failover:.2f} s vs heartbeat timeout + period {TIMEOUT + PERIOD:.1f} s")
    # Spawning the new owner's worker and its first listing come on top of the lease.
    assert failover <= TIMEOUT + PERIOD + 6.0
    cloud.change("servers", count=2, seed=3)
    wait(lambda: settled(engine, cloud), 30, "later changes")
    time.sleep(1.0)  # the feeds send what is committed
    check_stream(fleet, engine, "nova.instance")
    check_stream(fleet, engine, "cinder.volume")
    engine.dispose()


def test_a_paused_owner_is_fenced_when_it_wakes(fleet, cloud, database):
    """SIGSTOP the Nova owner past its lease, SIGCONT it: nothing of its old term reaches anyone."""
    engine = sql.create_engine(database)
    wait(lambda: settled(engine, cloud), 60, "the nova view to equal the cloud")
    owner, _ = wait(lambda: running(fleet, engine, "nova"), 60, "the nova owner to run it")
    paused = fleet[owner]
    pids = [paused.proc.pid, *paused.worker_pids()]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    cloud.change("servers", count=3, seed=4)
    wait(lambda: owners(engine)["nova"][0] != owner, 30, "a new nova owner")
    wait(lambda: settled(engine, cloud), 30, "the new owner's commits")
    with paused._cond:
        before = len(paused.records)
    cloud.change("servers", count=3, seed=5)  # the woken owner's workers see these too
    for pid in pids:
        os.kill(pid, signal.SIGCONT)
    paused.wait_log("gives it up", timeout=3 * TIMEOUT)
    wait(lambda: settled(engine, cloud), 30, "the new owner's later commits")
    time.sleep(1.5)
    # (It may own nova again by now, under a newer term: the assignment is sticky.)
    # Whatever the woken member sent is a change the store committed with that seq.
    check_stream(fleet, engine, "nova.instance")
    with paused._cond:
        late = [r for r in paused.records[before:] if r["type"] == "nova.instance"]
    history = {c.seq: c for c in sql.SQLStore(engine, "nova", "reader").history(0) or []}
    for r in late:
        assert history[r["seq"]].entity.state == r["state"], "an old-term change got out"
    engine.dispose()


def test_a_paused_coordinator_stops_the_partitions_then_they_catch_up(
    fleet, cloud, coordinator, database
):
    """The coordinator paused past the lease: owners stop what they cannot renew, then catch up."""
    engine = sql.create_engine(database)
    wait(lambda: set(owners(engine)) == {"nova", "cinder"}, 60, "both partitions owned")
    wait(lambda: settled(engine, cloud), 60, "the nova view to equal the cloud")
    owner, term = wait(lambda: running(fleet, engine, "nova"), 60, "the nova owner to run it")
    coordinator.pause()
    try:
        cloud.change("servers", count=3, seed=6)
        fleet[owner].wait_log("its lease could not be renewed", timeout=4 * TIMEOUT)
    finally:
        coordinator.resume()
    cloud.change("servers", count=2, seed=7)
    wait(lambda: settled(engine, cloud), 60, "the view to catch up after the coordinator")
    assert owners(engine)["nova"][1] > term
    time.sleep(1.5)
    check_stream(fleet, engine, "nova.instance")
    check_stream(fleet, engine, "cinder.volume")
    engine.dispose()


def title(pid: int) -> str:
    """What ps shows of a process."""
    out = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True)
    return out.stdout.strip()


STANDBY = re.compile(r"Started worker (\S+) \(pid (\d+)\) on standby")
TAKEN = re.compile(r"Worker (\S+) \(pid (\d+)\) taken off standby")


def test_the_heir_runs_the_worker_it_kept_on_standby_which_did_nothing_before(
    fleet, cloud, database
):
    """Standby workers poll nothing; at a failover the heir's standby worker takes over."""
    engine = sql.create_engine(database)
    wait(lambda: settled(engine, cloud), 60, "the nova view to equal the cloud")
    owner, _ = wait(lambda: running(fleet, engine, "nova"), 60, "the nova owner to run it")
    others = {m: d for m, d in fleet.items() if m != owner}
    standby = {}
    for member, d in others.items():
        kept = [m.groups() for line in d.logs if (m := STANDBY.search(line))]
        assert tuple({w for w, _ in kept} & {"nova.instance"}) == ("nova.instance",), member
        standby[member] = {int(pid) for w, pid in kept if w == "nova.instance"}
        assert standby[member] & set(d.worker_pids()), f"{member}: no nova standby running"
        # Kept, never let through: since it started it listed nothing (only the
        # owner polls Nova; a member that owned nova earlier polled it then).
        last = max(
            i
            for i, line in enumerate(d.logs)
            if (m := STANDBY.search(line)) and m.group(1) == "nova.instance"
        )
        assert not any("nova.instance: full cycle" in line for line in d.logs[last:]), member
        assert {title(pid) for pid in standby[member] & set(d.worker_pids())} == {
            "synchronizer: collector nova.instance (standby)"
        }
    fleet[owner].kill()
    wait(lambda: owners(engine)["nova"][0] not in (owner, None), 30, "a new nova owner")
    heir = owners(engine)["nova"][0]
    d = fleet[heir]
    d.wait_log("nova.instance: full cycle", timeout=30)
    taken = [
        int(pid)
        for line in d.logs
        if (m := TAKEN.search(line))
        for w, pid in [m.groups()]
        if w == "nova.instance"
    ]
    assert set(taken) & standby[heir], taken
    assert title(taken[-1]) == "synchronizer: collector nova.instance"
    wait(lambda: settled(engine, cloud), 30, "the heir's commits")
    # The member that did not inherit keeps its standby; the heir starts a new one
    # only if it gives nova up again.
    engine.dispose()
