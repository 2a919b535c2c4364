"""A partition gained again while the loss of its last term is still under way stays held.

A member's partitions are lost on two threads (the ownership loop, and the
lease watch that stops them when the coordinator does not answer) and
gained on the loop's: after a coordinator pause past the lease, the loop
takes a partition again (its lock has expired) while the watch is still
stopping the old term.  Both transitions of one partition must not
interleave: the old term's end must not take the new term's run, workers
or routing with it, or the member holds the partition's lock and newest
term while serving nobody (its /healthz says not held, its collectors'
changes are refused) until its lock is lost again.

In-process: a real :class:`~synchronizer.fleet.member.Member` on real
PostgreSQL with real worker processes against the fake cloud; its
coordinator is never reached (the test gains and loses, as the ownership
threads do).  The old term's loss is made long by a listing the cloud
never answers (its worker's stop waits 2 s for the cycle).
"""

from __future__ import annotations

import threading
import time

from synchronizer import opts
from synchronizer.dispatch import sql
from synchronizer.fleet.member import Member
from synchronizer_fakecloud import testbed
from tests.functional.fleet.test_failover import cloud_view, view, wait


def _member(tmp_path, cloud, database) -> Member:
    text = testbed.member_config(
        "m1",
        cloud,
        "redis://127.0.0.1:1",  # never reached: the test gains and loses
        database,
        3,
        {"nova.instance": {"period": 0.2}},
        sinks="log",
        worker_restart_delay=0.2,
    )
    path = testbed.write_config(tmp_path / "m1.conf", text)
    return Member(opts.parse(["--config-file", str(path)], setup_logging=False))


def test_a_partition_gained_while_its_last_term_is_being_stopped_is_served(
    cloud, database, tmp_path
):
    cloud.reset()
    cloud.populate(servers=8, hosts=1, volumes=0)
    member = _member(tmp_path, cloud, database)
    engine = sql.create_engine(database, create_tables=False)
    member.start()
    try:
        assert member._gain("nova")
        wait(lambda: len(view(engine, "nova.instance")) == 8, 30, "the first listing committed")
        cloud.hang("nova")  # the next poll never ends: stopping its worker takes 2 s
        time.sleep(0.5)
        first = member.owned()["nova"]
        # The lease watch's loss of the first term (no plan: the lease ran out) ...
        loss = threading.Thread(
            target=member._lose, args=("nova", "its lease could not be renewed")
        )
        loss.start()
        time.sleep(0.3)
        # ... and the loop's gain of the next, before that loss has ended.
        assert member._gain("nova")
        cloud.clear_faults()
        loss.join(30)
        assert not loss.is_alive()
        term = sql.owners(engine)["nova"][1]
        assert term > first
        # The member serves the term the database gave it.
        assert member.owned() == {"nova": term}
        assert member.partition_report()["nova"]["held"] is True
        cloud.change("servers", count=3, seed=77)
        wait(lambda: view(engine, "nova.instance") == cloud_view(cloud), 30, "the change committed")
        assert sql.owners(engine)["nova"][1] == term
        # Stopping the member stops the run its ownership loop never held.
        member.stop(timeout=10)
        assert member.owned() == {}
        assert [t.name for t in threading.enumerate() if t.name.startswith("feed-")] == []
    finally:
        cloud.clear_faults()
        member.stop(timeout=10)
        engine.dispose()
