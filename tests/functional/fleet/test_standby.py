"""Standby workers take nothing from the bus: only the owner's notification worker listens.

Real parts: three daemons with ``nova.instance``, ``nova.notifications``
(partition ``nova``) and ``cinder.volume``, a Redis of their own (tooz),
PostgreSQL, the real RabbitMQ, the fake cloud.  Who listens is read off
the machine: which worker processes hold a connection to the broker
(``ss``), and what ``ps`` calls them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator

import pytest

from synchronizer.dispatch import sql
from synchronizer_fakecloud import testbed
from tests.functional.fleet.test_failover import MEMBERS, PERIOD, TIMEOUT, _cont, running, wait
from tests.helpers.daemon import Daemon

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to see sockets"),
]

NOTIFICATIONS = "synchronizer: notifications nova.notifications"


@pytest.fixture
def fleet(cloud, redis, database, tmp_path, transport_url, unique) -> Iterator[dict[str, Daemon]]:
    cloud.reset()
    cloud.populate(servers=6, hosts=2, volumes=3)
    plugins = {
        "nova.instance": {"period": PERIOD},
        "nova.notifications": {},
        "cinder.volume": {"period": PERIOD},
    }
    daemons = {}
    for m in MEMBERS:
        text = testbed.member_config(
            m,
            cloud,
            redis.url,
            database,
            TIMEOUT,
            plugins,
            sinks="jsonl",
            jsonl_path="-",
            transport_url=transport_url,
            rpc_topic=f"view_{unique}",
            notification_pool=f"pool-{unique}",
            worker_restart_delay=0.2,
        )
        daemons[m] = Daemon(testbed.write_config(tmp_path / f"{m}.conf", text)).start()
    yield daemons
    for d in daemons.values():
        _cont(d)
        d.stop(timeout=15)
    testbed.delete_queues([f"pool-{unique}-nova", f"view_{unique}"])


def titles(d: Daemon) -> dict[int, str]:
    out = {}
    for pid in d.worker_pids():
        ps = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True)
        out[pid] = ps.stdout.strip()
    return out


def on_the_broker(transport_url: str) -> set[int]:
    """The pids of the processes with a TCP connection to the broker."""
    port = urllib.parse.urlsplit(transport_url).port or 5672
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"dst 127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def listeners(fleet: dict[str, Daemon], transport_url: str) -> dict[str, tuple[int, str, bool]]:
    """Per member: its notification worker's pid, title, and whether it is on the broker."""
    connected = on_the_broker(transport_url)
    found = {}
    for m, d in fleet.items():
        for pid, title in titles(d).items():
            if title.startswith(NOTIFICATIONS):
                found[m] = (pid, title, pid in connected)
    return found


def test_only_the_owners_notification_worker_is_on_the_broker_before_and_after_a_failover(
    fleet, database, transport_url
):
    """The standby notification workers hold no connection; the heir's connects once it owns."""
    engine = sql.create_engine(database)
    owner = wait(lambda: listening_owner(fleet, engine), 90, "the nova owner to listen")

    def three_workers():
        found = listeners(fleet, transport_url)
        return found if len(found) == len(MEMBERS) else None

    found = wait(three_workers, 30, "a notification worker in every member")
    assert found[owner][2], f"the owner's worker is not on the broker: {found}"
    assert not found[owner][1].endswith("(standby)")
    for m in set(MEMBERS) - {owner}:
        pid, title, connected = found[m]
        assert title == f"{NOTIFICATIONS} (standby)", (m, title)
        assert not connected, f"{m}'s standby notification worker {pid} is on the broker"
        # The first member up may have run nova before the others joined; what it
        # listened with then went with the term it gave up.
        listened = fleet[m].count_logs("Listening for")
        assert listened <= fleet[m].count_logs("Partition nova: stopped"), m

    fleet[owner].kill()
    wait(lambda: owners_but(engine, owner), 30, "a new nova owner")
    heir = sql.owners(engine)["nova"][0]
    fleet[heir].wait_log("Listening for", timeout=30)
    kept = found[heir][0]
    after = wait(
        lambda: (f := listeners(fleet, transport_url)).get(heir, (0, "", False))[2] and f,
        30,
        "the heir's notification worker on the broker",
    )
    assert after[heir][:2] == (kept, NOTIFICATIONS), "the heir did not use its standby worker"
    for m in set(MEMBERS) - {owner, heir}:
        assert not after[m][2], f"{m} (standby) connected: {after[m]}"
    engine.dispose()


def listening_owner(fleet: dict[str, Daemon], engine) -> str | None:
    """The nova owner once it runs the partition and its notification worker listens.

    On a loaded machine the assignment can still move once after every
    member joined (the owner then gives the partition up): each term it
    runs listens once, and each stop ends that listener.
    """
    found = running(fleet, engine, "nova")
    if found is None:
        return None
    d = fleet[found[0]]
    listens = d.count_logs("Listening for") > d.count_logs("Partition nova: stopped")
    return found[0] if listens else None


def owners_but(engine, owner: str) -> bool:
    return sql.owners(engine)["nova"][0] not in (owner, None)
