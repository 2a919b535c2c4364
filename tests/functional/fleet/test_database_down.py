"""The database down for a while under three members: nothing crashes, nothing is lost or false.

The store is a PostgreSQL server of the test's own (its own data dir and
port: never the shared one), stopped outright while servers change and
started again.  A watcher on the real client must equal the cloud after,
having been told no delete (the cloud deleted nothing).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from synchronizer import opts
from synchronizer.dispatch import sql
from synchronizer.model import Action, Change
from synchronizer.outputs import client
from synchronizer_fakecloud import testbed
from tests.functional.fleet.test_failover import MEMBERS, TIMEOUT, _cont, wait
from tests.functional.fleet.test_rebalance import settle
from tests.functional.fleet.test_stream import (
    CLEAN,
    Watcher,
    _config,
    _delete_queues,
    diff,
    healthz,
    servers,
)
from tests.helpers import fleetparts
from tests.helpers.daemon import Daemon

pytestmark = pytest.mark.broker


@pytest.fixture
def postgres() -> Iterator[fleetparts.Postgres]:
    server = fleetparts.Postgres().start()
    yield server
    server.stop()


class Deletes(Watcher):
    """A watcher that also counts the deletes it was told."""

    def __init__(self) -> None:
        super().__init__()
        self.deletes: list[str] = []

    def __call__(self, item) -> None:
        if isinstance(item, Change) and item.action is Action.DELETE:
            self.deletes.append(item.entity.key)
        super().__call__(item)


def test_members_outlive_the_database_and_catch_up(
    cloud, redis, postgres, tmp_path, transport_url, unique
):
    """PostgreSQL stopped ~3 leases while servers change: no crash, then the cloud, no delete."""
    cloud.reset()
    cloud.populate(servers=15, hosts=2, volumes=6)
    daemons = {}
    for m in MEMBERS:
        port = fleetparts.free_port()
        path = _config(
            tmp_path / f"{m}.conf", m, cloud, redis, postgres.url, transport_url, unique, port
        )
        daemons[m] = Daemon(path).start()
        daemons[m].metrics_port = port  # type: ignore[attr-defined]
    engine = sql.create_engine(postgres.url, create_tables=False)
    watcher = Deletes()
    handle = None
    stop = threading.Event()

    def churn() -> None:
        seed = 300
        while not stop.wait(0.4):
            seed += 1
            cloud.change("servers", count=2, seed=seed)
            if seed % 4 == 0:
                cloud.change("servers", count=1, action="create", seed=seed)

    churner = threading.Thread(target=churn)
    try:
        wait(lambda: set(_owners(engine)) == {"nova", "cinder"}, 60, "both partitions owned")
        conf = opts.parse(["--config-file", str(tmp_path / "m1.conf")], setup_logging=False)
        handle = client.watch(conf, None, watcher, timeout=20)
        assert watcher.synced.wait(30)
        wait(lambda: diff(watcher.view("nova.instance"), servers(cloud)) == CLEAN, 60, "synced")
        _, term = sql.owners(engine)["nova"]
        churner.start()
        postgres.halt()
        try:
            # The store must be reached to be refused: the owner's next batch
            # (it gives the partition up), or, had the owner lost the partition
            # first (a lease lapsing on 2 busy cores), its next owner's opening
            # of the partition's state.  Either way a member finds it down.
            found = _first_to_find_it_down(daemons, timeout=10 * TIMEOUT)
            # The members say the database does not answer; they run on.
            report = healthz(found)
            assert report["partitions"]["nova"]["database_term"] is None
            time.sleep(3 * TIMEOUT)
            assert all(d.proc.poll() is None for d in daemons.values())
        finally:
            postgres.resume()
        time.sleep(2.0)
        stop.set()
        churner.join()
        settle(watcher, cloud, 45)  # the cloud, no seq with two contents, none backwards
        assert watcher.deletes == []
        assert sql.owners(engine)["nova"][1] > term
        assert all(d.proc.poll() is None for d in daemons.values())
    finally:
        _report(daemons)
        stop.set()
        if churner.is_alive():
            churner.join()
        if handle is not None:
            handle.stop()
        for d in daemons.values():
            _cont(d)
            d.stop(timeout=15)
        engine.dispose()
        _delete_queues(
            [f"view_{unique}.fleet-{m}" for m in MEMBERS]
            + [f"pool-{unique}-{p}" for p in ("nova", "cinder")]
        )


def _first_to_find_it_down(daemons: dict[str, Daemon], timeout: float) -> Daemon:
    """The member whose log first says the store refused it (batch or opening)."""
    signs = ("a batch was refused", "cannot open its state")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in daemons.values():
            if any(d.count_logs(sign) for sign in signs):
                return d
        time.sleep(0.2)
    raise AssertionError(f"no member found the database down in {timeout} s")


def _report(daemons: dict[str, Daemon]) -> None:
    """What each member did with its partitions (shown with a failure)."""
    for m, d in daemons.items():
        for line in d.logs:
            if "Partition" in line or "refused" in line or "Traceback" in line:
                print(m, line[:240])


def _owners(engine) -> dict:
    try:
        return sql.owners(engine)
    except Exception:  # noqa: BLE001 - the tables are made by the first claim
        return {}


def _cut_connections(admin, database: str) -> int:
    """End every session of the member on its database (as a database restart does)."""
    name = database.rsplit("/", 1)[1]
    with admin.connect() as conn:
        query = sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :name AND pid <> pg_backend_pid()"
        )
        return len(conn.execute(query, {"name": name}).all())


def _gaps(engine) -> list[str]:
    """Each partition's history against its seq (see :func:`fleetparts.history_gaps`)."""
    with engine.connect() as conn:
        streams = dict(conn.execute(sa.select(sql.partitions.c.name, sql.partitions.c.seq)).all())
        seqs = conn.execute(sa.select(sql.history.c.partition, sql.history.c.seq)).all()
    return fleetparts.history_gaps(streams, seqs)


def test_a_member_whose_connections_the_database_ends_opens_its_partitions_again(
    cloud, redis, database, tmp_path
):
    """The database ends the member's sessions mid-commit (a restart, a proxy failing over).

    oslo.db raises a lost connection as its own DBConnectionError, not
    SQLAlchemy's: the batch that lost it must still drop the partition
    (its store may hold the batch) and the partition be opened again from
    the database, or the next batch is committed after a seq nobody wrote.
    """
    cloud.reset()
    cloud.populate(servers=30, hosts=2, volumes=6)
    periods = {"nova.instance": {"period": 0.1}, "cinder.volume": {"period": 0.1}}
    text = testbed.member_config(
        "m1", cloud, redis.url, database, TIMEOUT, periods, worker_restart_delay=0.2
    )
    daemon = Daemon(testbed.write_config(tmp_path / "m1.conf", text)).start()
    engine = sql.create_engine(database, create_tables=False)
    admin = sa.create_engine(database)
    try:
        wait(lambda: set(_owners(engine)) == {"nova", "cinder"}, 60, "both partitions owned")
        cut = 0
        deadline = time.monotonic() + 60
        seed = 500
        # Cut until a commit lost its connection (the partition was reopened), at most a minute.
        while time.monotonic() < deadline and not _reopened(daemon):
            seed += 1
            cloud.change("servers", count=4, seed=seed)
            cloud.change("volumes", count=1, seed=seed)
            time.sleep(random.uniform(0.0, 0.15))
            cut += _cut_connections(admin, database)
        assert daemon.count_logs("Dispatcher failed on a message") == 0, _lines(daemon)
        assert _reopened(daemon), f"no commit lost its connection in {cut} cut sessions"
        wait(lambda: set(_owners(engine)) == {"nova", "cinder"}, 30, "both partitions owned")
        cloud.change("servers", count=3, seed=seed + 1)
        time.sleep(2.0)
        assert _gaps(engine) == []
        assert daemon.proc.poll() is None
    finally:
        daemon.stop(timeout=15)
        engine.dispose()
        admin.dispose()


def _reopened(daemon: Daemon) -> bool:
    return daemon.count_logs("a batch was refused") > 0


def _lines(daemon: Daemon) -> str:
    return "\n".join(line[:300] for line in daemon.logs if "Dispatcher failed" in line)
