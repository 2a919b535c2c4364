"""Partitions handed over under a stream of notifications: not one of them is lost.

Real parts: two daemons (``m1``; ``m2`` joins and is assigned ``nova``,
then stops and ``nova`` goes back), a Redis (tooz), PostgreSQL, the real
RabbitMQ and the fake cloud.  Partition ``nova`` is ``nova.notifications``
alone, so no poll makes up for a notification lost; ``cinder`` polls the
fake cloud.  Each notification creates an instance nothing else mentions:
one dropped is one missing from the watcher's view.

The old owner took notifications from the bus until it was told to give
the partition up; its worker's last batch (flushed once its listener
stopped) went into a pipe that was closed unread, and what waited in the
member's queue was dropped, the partition being no longer its own: 15 to
22 of about 1,000 were lost in each of three runs.
"""

from __future__ import annotations

import time

import pytest

from synchronizer import opts
from synchronizer.dispatch import sql
from synchronizer.outputs import client
from synchronizer_fakecloud import testbed
from tests.functional.fleet.test_failover import PERIOD, TIMEOUT, _cont, wait
from tests.functional.fleet.test_stream import Watcher
from tests.helpers.daemon import Daemon
from tests.helpers.novabus import InstancePublisher

pytestmark = pytest.mark.broker

RATE = 100.0  # notifications a second
AFTER = 2.0  # seconds of notifications after the new owner runs the partition


def test_a_rebalance_under_notifications_drops_none(
    cloud, redis, database, tmp_path, transport_url, unique
):
    """m2 joins, then stops, under 100 notifications a second: every instance is told."""
    cloud.reset()
    cloud.populate(servers=2, hosts=1, volumes=2)
    template = cloud.get("servers", cloud.keys("servers")[0])
    exchange, topic = f"nova_{unique}", f"test_notifications_{unique}"
    plugins = {
        "nova.notifications": {"topics": topic, "exchange": exchange},
        "cinder.volume": {"period": PERIOD},
    }
    confs = {}
    for m in ("m1", "m2"):
        text = testbed.member_config(
            m,
            cloud,
            redis.url,
            database,
            TIMEOUT,
            plugins,
            sinks="message",
            transport_url=transport_url,
            message_topic=f"synchronizer_{unique}",
            rpc_topic=f"view_{unique}",
            notification_pool=f"pool-{unique}",
            worker_restart_delay=0.2,
        )
        confs[m] = testbed.write_config(tmp_path / f"{m}.conf", text)
    engine = sql.create_engine(database, create_tables=False)
    daemons = {"m1": Daemon(confs["m1"]).start()}
    watcher = Watcher()
    handle = None
    publisher = InstancePublisher(transport_url, exchange, topic, template, RATE)
    try:
        # The pool's queue exists once the first listener declared it: what was
        # published before went nowhere (RabbitMQ drops what no queue is bound for).
        wait(lambda: daemons["m1"].count_logs("Listening for"), 60, "m1's notification worker")
        conf = opts.parse(["--config-file", str(confs["m1"])], setup_logging=False)
        handle = client.watch(conf, ["nova.instance"], watcher, timeout=20)
        assert watcher.synced.wait(30)
        publisher.start()
        wait(lambda: len(watcher.view("nova.instance")) >= 20, 30, "m1 to tell notifications")
        # A member joins and is assigned nova; then it stops (a rolling restart)
        # and nova goes back: two hand-overs under the stream.
        daemons["m2"] = Daemon(confs["m2"]).start()
        wait(lambda: daemons["m2"].count_logs("Partition nova: running"), 60, "m2 to run nova")
        assert daemons["m1"].count_logs("Partition nova: stopped") == 1
        assert sql.owners(engine)["nova"][0] == "m2"
        time.sleep(AFTER)
        daemons["m2"].stop(timeout=15)
        wait(lambda: daemons["m1"].count_logs("Partition nova: running") == 2, 60, "nova back")
        time.sleep(AFTER)
        publisher.stop()
        sent = set(publisher.sent)

        def missing() -> set[str]:
            return sent - watcher.view("nova.instance").keys()

        deadline = time.monotonic() + 60
        while missing() and time.monotonic() < deadline:
            time.sleep(0.2)
        lost = missing()
        assert not lost, (
            f"{len(lost)} of {len(sent)} notified instances never reached the watcher "
            f"(published at {publisher.when(lost)})"
        )
        assert not watcher.conflicts
    finally:
        if not publisher.stopping.is_set():
            publisher.stop()
        if handle is not None:
            handle.stop()
        for d in daemons.values():
            _cont(d)
            d.stop(timeout=15)
        engine.dispose()
        testbed.delete_queues(
            [f"view_{unique}.fleet-{m}" for m in ("m1", "m2")]
            + [f"pool-{unique}-{p}" for p in ("nova", "cinder")]
        )
