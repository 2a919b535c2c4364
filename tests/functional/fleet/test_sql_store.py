"""The shared SQL store on real PostgreSQL and MariaDB: a stream per partition, fenced."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from synchronizer import fingerprint, timeutil
from synchronizer.dispatch import sql
from synchronizer.dispatch.dispatcher import Dispatcher
from synchronizer.dispatch.feed import Feed
from synchronizer.errors import Fenced
from synchronizer.model import Action, Change, Entity, Source
from tests.helpers import fleetparts

SRC = Source("poll", "nova.instance")


def ch(key, state="ACTIVE", action=Action.UPDATE, type_="nova.instance"):
    e = Entity(type_, key, state=state, timestamp=timeutil.now(), source=SRC)
    return Change(action, e, fingerprint.of(e))


@pytest.fixture(params=["postgresql", "mysql"])
def engine(request):
    url = fleetparts.create_database(request.param)
    engine = sql.create_engine(url)
    yield engine
    engine.dispose()
    fleetparts.drop_database(url)


def owner_of(engine, partition, member, **kw):
    store = sql.SQLStore(engine, partition, member, **kw)
    store.claim()
    return store


def test_a_new_owner_resumes_the_view_seq_and_history(engine):
    """The next term reads what the last one committed: the view, its seq, its history."""
    a = Dispatcher(store=owner_of(engine, "nova", "m1"))
    a.dispatch([ch("u1"), ch("u2"), ch("u3")])
    a.dispatch([ch("u2", state="SHUTOFF"), ch("u3", action=Action.DELETE)])
    assert a.last_seq() == 5
    b = Dispatcher(store=owner_of(engine, "nova", "m2"))
    assert b.last_seq() == 5
    assert b.store.epoch == a.store.epoch
    assert {e.key: e.state for e in b.get_all()} == {"u1": "ACTIVE", "u2": "SHUTOFF"}
    # What the old owner told is not told again; only what differs is.
    assert b.dispatch([ch("u1"), ch("u2", state="SHUTOFF")]) == []
    told = b.dispatch([ch("u1", state="ERROR")])
    assert [(c.key, c.seq) for c in told] == [("u1", 6)]
    assert [c.seq for c in b.history(0)] == [1, 2, 3, 4, 5, 6]
    seq, docs = b.view_docs(["nova.instance"])
    assert seq == 6
    assert len(docs) == 2
    assert sql.owners(engine)["nova"] == ("m2", 2)


def test_the_old_terms_writes_are_refused_and_invisible(engine):
    """Once another member claims the partition, the old owner's batch raises, leaving nothing."""
    a = Dispatcher(store=owner_of(engine, "nova", "m1"))
    a.dispatch([ch("u1")])
    a.store.save_position("message", 1)
    b_store = owner_of(engine, "nova", "m2")
    with pytest.raises(Fenced):
        a.dispatch([ch("u9"), ch("u1", state="ERROR")])
    with pytest.raises(Fenced):
        a.store.save_position("message", 2)
    b = Dispatcher(store=b_store)
    assert [c.key for c in b.history(0)] == ["u1"]
    assert {e.key: e.state for e in b.get_all()} == {"u1": "ACTIVE"}
    assert b.store.position("message") == 1
    # A store reopened from the database shows the same: nothing of the refused batch.
    c = Dispatcher(store=owner_of(engine, "nova", "m3"))
    assert c.last_seq() == 1
    assert [e.key for e in c.get_all()] == ["u1"]


def test_partitions_are_separate_streams(engine):
    """Each partition has its own seq and view in the one database."""
    nova = Dispatcher(store=owner_of(engine, "nova", "m1"))
    cinder = Dispatcher(store=owner_of(engine, "cinder", "m2"))
    nova.dispatch([ch("u1"), ch("u2")])
    cinder.dispatch([ch("v1", state="available", type_="cinder.volume")])
    assert (nova.last_seq(), cinder.last_seq()) == (2, 1)
    assert [e.key for e in cinder.get_all()] == ["v1"]
    assert sorted(sql.owners(engine)) == ["cinder", "nova"]


def test_tombstones_survive_a_failover(engine):
    """A delete the old owner told still guards the new owner against a stale read."""
    a = Dispatcher(store=owner_of(engine, "nova", "m1"))
    old = ch("u1")
    a.dispatch([old])
    a.dispatch([ch("u1", action=Action.DELETE)])
    b = Dispatcher(store=owner_of(engine, "nova", "m2"))
    assert b.tombstone_count() == 1
    assert b.dispatch([old]) == []


def test_history_trim_keeps_a_saved_position(engine):
    """Trimming drops history past the bound, never past a sink's saved position."""
    store = owner_of(engine, "nova", "m1", history_max_changes=2)
    d = Dispatcher(store=store)
    d.dispatch([ch(f"u{i}") for i in range(6)])
    store.save_position("message", 3)
    store.trim()
    assert store.history_floor() == 3
    assert store.history(1) is None
    assert [c.seq for c in store.history(3)] == [4, 5, 6]


def test_history_older_than_its_age_bound_is_trimmed_the_rest_kept(engine):
    """history_max_age: changes older than it go, younger ones stay (this partition's only)."""
    store = owner_of(engine, "nova", "m1", history_max_age=0.4)
    other = owner_of(engine, "cinder", "m1", history_max_age=0.4)
    d, o = Dispatcher(store=store), Dispatcher(store=other)
    d.dispatch([ch(f"u{i}") for i in range(3)])
    o.dispatch([ch("v1", type_="cinder.volume")])
    time.sleep(0.5)
    d.dispatch([ch(f"w{i}") for i in range(2)])
    assert store.trim() == 3
    assert store.history(2) is None
    assert [c.seq for c in store.history(3)] == [4, 5]
    assert [c.seq for c in other.history(0)] == [1]  # another partition's history stays


def test_an_earlier_schemas_float_times_become_double_on_mysql():
    """MariaDB: tables made with FLOAT times (4 bytes: minutes) are altered to DOUBLE."""
    import sqlalchemy as sa

    url = fleetparts.create_database("mysql")
    engine = sql.create_engine(url, create_tables=False)
    try:
        old = sa.MetaData()
        for table in sql.metadata.sorted_tables:
            columns = [
                sa.Column(
                    c.name,
                    sa.Float if isinstance(c.type, sa.Double) else c.type,
                    primary_key=c.primary_key,
                    nullable=c.nullable,
                    autoincrement=c.autoincrement,
                )
                for c in table.columns
            ]
            sa.Table(table.name, old, *columns)
        old.create_all(engine)
        inspector = sa.inspect(engine)
        before = {
            c["name"]: type(c["type"]).__name__ for c in inspector.get_columns("sync_history")
        }
        assert before["committed"] == "FLOAT"
        sql.create_tables_of(engine)
        inspector = sa.inspect(engine)
        for table, column in (
            ("sync_history", "committed"),
            ("sync_partitions", "claimed"),
            ("sync_positions", "updated"),
        ):
            types = {c["name"]: type(c["type"]).__name__ for c in inspector.get_columns(table)}
            assert types[column] == "DOUBLE", (table, types)
        store = owner_of(engine, "nova", "m1")
        Dispatcher(store=store).dispatch([ch("u1")])
        with engine.connect() as conn:
            (committed,) = conn.execute(sa.select(sql.history.c.committed)).one()
        assert abs(committed - time.time()) < 60
    finally:
        engine.dispose()
        fleetparts.drop_database(url)


def test_a_sink_says_the_database_is_down_once_and_resumes_when_it_is_back(caplog):
    """The store down under a running sink: one ERROR with its traceback, not one a second.

    The feed retries every second; each failure was logged with a
    traceback, hundreds of them in an outage of minutes.  Once the
    database is back it says so, and sends what was committed meanwhile.
    """
    server = fleetparts.Postgres().start()
    engine = sql.create_engine(server.url)
    d = Dispatcher(store=owner_of(engine, "nova", "m1"))
    got: list[Change] = []
    feed = Feed(d, got.append, "message")
    caplog.set_level(logging.DEBUG, logger="synchronizer.dispatch.feed")
    try:
        feed.start()
        d.dispatch([ch("u1")])
        _until(lambda: len(got) == 1, "the first change sent")
        server.halt()
        _until(lambda: _said(caplog, logging.DEBUG) >= 3, "three retries said at DEBUG", 30)
        assert _said(caplog, logging.ERROR) == 1
        (first,) = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert first.exc_info is not None  # the traceback, once
        server.resume()
        _until(lambda: "reads the history again" in caplog.text, "the recovery said", 30)
        d.dispatch([ch("u2")])
        _until(lambda: [c.key for c in got] == ["u1", "u2"], "the change after the outage")
    finally:
        feed.stop()
        d.close()
        engine.dispose()
        server.stop()


def _said(caplog, level: int) -> int:
    return sum(
        1 for r in caplog.records if r.levelno == level and "read the history" in r.getMessage()
    )


def _until(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_members_starting_together_create_the_tables_without_an_error(dialect):
    """Several members' first claims on a new database: one creates, none fails.

    Each checked for the tables and created the missing ones; two doing so
    at once made one fail ("relation sync_partitions already exists"),
    an ERROR and a failed start at every new fleet's first start.
    """
    url = fleetparts.create_database(dialect)
    engines = [sql.create_engine(url, create_tables=False) for _ in range(6)]
    start = threading.Barrier(len(engines))
    failed: list[BaseException] = []

    def create(engine) -> None:
        start.wait()
        try:
            sql.create_tables_of(engine)
        except Exception as exc:  # noqa: BLE001 - what the test reports
            failed.append(exc)

    threads = [threading.Thread(target=create, args=(e,)) for e in engines]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert failed == []
        assert sql.owners(engines[0]) == {}  # the tables are there, and empty
    finally:
        for e in engines:
            e.dispose()
        fleetparts.drop_database(url)
