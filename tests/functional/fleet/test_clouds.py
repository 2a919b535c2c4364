"""Two clouds in a fleet: each (cloud, service) its own partition, one stream for consumers.

Real parts: two members (message sink on the real RabbitMQ), a Redis of
their own (tooz), PostgreSQL, and two fake clouds populated from the same
seed (equal server UUIDs).  Each cloud's Nova is a partition of its own
(``east.nova``, ``west.nova``), owned by one member; the database keeps
both clouds' entities apart (its ``cloud`` column); get_all and a watcher
see both clouds, and a change in one reaches that cloud's entity only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from synchronizer import clouds, fingerprint, opts
from synchronizer.dispatch import sql
from synchronizer.model import Action, Change, Entity
from synchronizer.outputs import client
from synchronizer_fakecloud.server import FakeCloud
from tests.functional.fleet.test_failover import PERIOD, TIMEOUT, wait
from tests.functional.fleet.test_stream import Watcher, _delete_queues
from tests.helpers import fleetparts
from tests.helpers.cloudconf import service_credentials
from tests.helpers.daemon import Daemon

pytestmark = pytest.mark.broker

MEMBERS = ("m1", "m2")
CLOUDS = ("east", "west")
SERVERS = 10


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeCloud]]:
    with FakeCloud() as east, FakeCloud() as west:
        for fake in (east, west):
            fake.populate(servers=SERVERS, hosts=2, seed=11)
        yield {"east": east, "west": west}


def _config(path: Path, member: str, fakes, redis, database, transport_url, u) -> Path:
    lines = [
        "[DEFAULT]",
        "clouds = east, west",
        "sinks = message",
        f"transport_url = {transport_url}",
        f"message_topic = synchronizer_{u}",
        f"rpc_topic = view_{u}",
        f"notification_pool = pool-{u}",
        "worker_restart_delay = 0.2",
        "[coordination]",
        f"backend_url = {redis.url}",
        f"heartbeat_timeout = {TIMEOUT}",
        f"member_id = {member}",
        "[database]",
        f"connection = {database}",
        "[nova.instance]",
        f"period = {PERIOD}",
    ]
    for name, fake in fakes.items():
        lines += [
            f"[cloud:{name}]",
            f"credentials = {name}_credentials",
            "plugins = nova.instance",
            f"[{name}_credentials]",
            *service_credentials(fake, timeout=5)[1:],
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fleet(fakes, redis, database, tmp_path, transport_url, unique) -> Iterator[dict[str, Daemon]]:
    daemons = {}
    for m in MEMBERS:
        conf = _config(tmp_path / f"{m}.conf", m, fakes, redis, database, transport_url, unique)
        daemons[m] = Daemon(conf).start()
    yield daemons
    for d in daemons.values():
        d.stop(timeout=15)
    _delete_queues([f"view_{unique}.fleet-{m}" for m in MEMBERS])


class CountingWatcher(Watcher):
    """A watcher that also counts the snapshot items (a relist's view) it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshots = 0

    def __call__(self, item) -> None:
        if getattr(item, "action", None) == "snapshot":
            self.snapshots += 1
        super().__call__(item)


def servers(fake: FakeCloud, cloud: str) -> dict[tuple[str | None, str], str]:
    return {(cloud, f"{cloud}/{k}"): fake.get("servers", k)["status"] for k in fake.keys("servers")}


def both(fakes) -> dict[tuple[str | None, str], str]:
    return {**servers(fakes["east"], "east"), **servers(fakes["west"], "west")}


def test_each_cloud_and_service_is_a_partition(fleet, fakes, database, tmp_path):
    """east.nova and west.nova are owned apart; get_all and a watcher see both clouds apart."""
    engine = sql.create_engine(database)
    conf = opts.parse(["--config-file", str(tmp_path / "m1.conf")], setup_logging=False)
    watcher = CountingWatcher()
    handle = None
    try:
        wait(lambda: set(sql.owners(engine)) == {"east.nova", "west.nova"}, 60, "both owned")
        wait(lambda: len({o for o, _ in sql.owners(engine).values()}) == 2, 30, "a spread")

        def view() -> dict[tuple[str | None, str], str | None]:
            got = client.get_all(conf, ["nova.instance"], timeout=20).entities
            return {(e.cloud, e.key): e.state for e in got}

        wait(lambda: view() == both(fakes), 30, "both clouds in get_all")
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT partition, cloud, count(*) FROM sync_entities GROUP BY 1, 2")
            ).fetchall()
        assert sorted(tuple(r) for r in rows) == [
            ("east.nova", "east", SERVERS),
            ("west.nova", "west", SERVERS),
        ]

        handle = client.watch(conf, ["nova.instance"], watcher, timeout=20)
        assert watcher.synced.wait(30)
        assert watcher.view("nova.instance") == {k: s for (_, k), s in both(fakes).items()}
        assert watcher.repeats == []
        assert watcher.snapshots == 2 * SERVERS  # each gate relists its own cloud's only

        changed = sorted(fakes["east"].keys("servers"))[0]
        fakes["east"].update("servers", changed, status="SHUTOFF")
        wait(lambda: view() == both(fakes), 30, "east's change")
        assert view()[("west", f"west/{changed}")] != "SHUTOFF"
        wait(
            lambda: watcher.view("nova.instance") == {k: s for (_, k), s in both(fakes).items()},
            30,
            "the watcher to see east's change",
        )
        assert watcher.backwards == []
        assert watcher.conflicts == []
        assert watcher.snapshots == 2 * SERVERS  # a change relists nothing
        assert set(handle.position) == {e for e, _ in sql.read_views(engine, ())[0].values()}
    finally:
        if handle is not None:
            handle.stop()
        engine.dispose()


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_a_database_from_before_clouds_gets_the_cloud_column(kind):
    """sync_entities made without cloud is given the column; a cloud's rows then carry it."""
    url = fleetparts.create_database(kind)
    engine = sql.create_engine(url, create_tables=False)
    try:
        before = sa.MetaData()
        sa.Table(
            sql.entities.name,
            before,
            *(
                sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                for c in sql.entities.columns
                if c.name != "cloud"
            ),
        )
        before.create_all(engine)
        sql.create_tables_of(engine)
        sql.create_tables_of(engine)  # idempotent
        store = sql.SQLStore(engine, "east.nova", "m1")
        store.claim()
        e = clouds.namespaced(Entity("nova.instance", "u1", state="ACTIVE"), "east")
        told = Change(Action.CREATE, e, fingerprint.of(e), seq=1)
        store.table(e.type)[e.key] = told
        store.commit([told], 1)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(sql.entities.c.cloud, sql.entities.c.key)).fetchall()
        assert [tuple(r) for r in rows] == [("east", "east/u1")]
        store.close()
    finally:
        engine.dispose()
        fleetparts.drop_database(url)
