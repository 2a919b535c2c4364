"""The shared SQL store on real PostgreSQL and MariaDB: a stream per partition, fenced."""

from __future__ import annotations

import pytest

from synchronizer import fingerprint, timeutil
from synchronizer.dispatch import sql
from synchronizer.dispatch.dispatcher import Dispatcher
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
