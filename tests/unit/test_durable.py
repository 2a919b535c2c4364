"""The durable state store on a real SQLite file: what survives, is set aside, is refused."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import time

import pytest

from synchronizer import fingerprint, timeutil
from synchronizer.dispatch.dispatcher import Dispatcher
from synchronizer.dispatch.durable import SCHEMA, SQLiteStore, read_baseline
from synchronizer.dispatch.rows import signed
from synchronizer.errors import StateLocked
from synchronizer.model import Action, Change, Entity, Ref, Source

SRC = Source("poll", "p")


def ch(key: str, state: str = "up", *, action=Action.CREATE, ts="2026-01-01T00:00:01Z", t="t"):
    e = Entity(t, key, state=state, timestamp=ts, source=SRC, parent=Ref("h", "h1"))
    e = e.replace(properties={"name": key, "n": 1})
    return Change(action, e, fingerprint.of(e) if action is not Action.DELETE else 0)


def reopen(path, **kw) -> Dispatcher:
    return Dispatcher(store=SQLiteStore(str(path), **kw))


def test_view_seq_and_epoch_survive_a_reopen(tmp_path):
    """A reopened store has the same epoch, the last seq, and the view; seq goes on from it."""
    path = tmp_path / "s.db"
    d = reopen(path)
    d.dispatch([ch("a"), ch("b")])
    d.dispatch([ch("a", "down", action=Action.UPDATE, ts="2026-01-01T00:00:02Z")])
    epoch = d.epoch
    d.close()
    again = reopen(path)
    assert (again.epoch, again.last_seq()) == (epoch, 3)
    assert sorted((e.key, e.state) for e in again.get_all()) == [("a", "down"), ("b", "up")]
    (told,) = again.dispatch([ch("c")])
    assert told.seq == 4
    assert again.dispatch([ch("a", "down", action=Action.UPDATE)]) == []  # a repeat, still
    again.close()


def test_a_delete_survives_as_a_tombstone_guarding_stale_reads(tmp_path):
    """After a reopen, a polled create of a key deleted a moment ago is still a stale read."""
    path = tmp_path / "s.db"
    d = reopen(path)
    d.dispatch([ch("a", ts=timeutil.normalize(time.time() - 2))])
    d.dispatch([ch("a", action=Action.DELETE, ts=timeutil.normalize(time.time() - 1))])
    d.close()
    again = reopen(path)
    assert again.tombstone_count() == 1
    assert again.dispatch([ch("a", ts=timeutil.now())]) == []
    again.close()


def test_history_resumes_and_says_gone_beyond_its_bound(tmp_path):
    """history(after) gives what came after, in seq order; older than the bound is None."""
    d = reopen(tmp_path / "s.db", history_max_changes=3)
    d.dispatch([ch(k) for k in "abcdef"])
    assert [c.key for c in d.history(2)] == ["c", "d", "e", "f"]
    d.store.trim()
    assert d.history(2) is None
    assert [c.key for c in d.history(3)] == ["d", "e", "f"]
    assert d.store.history_floor() == 3
    d.close()


def test_history_older_than_its_age_bound_is_trimmed_the_rest_kept(tmp_path):
    """history_max_age: changes older than it go, younger ones stay, a running sink pins."""
    d = reopen(tmp_path / "s.db", history_max_age=0.4)
    d.dispatch([ch(k) for k in "abc"])
    time.sleep(0.5)
    d.dispatch([ch(k) for k in "de"])
    assert d.store.trim() == 3
    assert d.history(2) is None
    assert [c.key for c in d.history(3)] == ["d", "e"]
    time.sleep(0.5)
    d.store.save_position("message", 4)
    assert d.store.trim() == 1  # d (seq 4) is what the sink sent last: e stays
    assert [c.key for c in d.history(4)] == ["e"]
    d.close()


def test_the_history_is_not_trimmed_past_a_running_sinks_position(tmp_path):
    """A sink's saved position pins the history; its position survives a reopen."""
    path = tmp_path / "s.db"
    d = reopen(path, history_max_changes=1)
    d.dispatch([ch(k) for k in "abcd"])
    d.store.save_position("message", 1)
    d.store.trim()
    assert [c.key for c in d.history(1)] == ["b", "c", "d"]
    d.close()
    again = SQLiteStore(str(path))
    assert again.position("message") == 1
    again.close()


def test_the_entities_table_reads_with_sql(tmp_path):
    """type, key, state, project, parent, properties (JSON) and seq, tombstones left out."""
    path = tmp_path / "s.db"
    d = reopen(path)
    d.dispatch([ch("a"), ch("b")])
    d.dispatch([ch("b", action=Action.DELETE, ts="2026-01-01T00:00:02Z")])
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT type, key, state, project, json_extract(parent, '$.key'),"
        " json_extract(properties, '$.name'), seq FROM live_entities"
    ).fetchall()
    db.close()
    d.close()
    assert rows == [("t", "a", "up", None, "h1", "a", 1)]


# Schema 1, as its daemons wrote it: the readers' columns were generated columns
# of the table itself (cloud came later: files made before clouds lack it).
_SCHEMA_1 = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE entities ("
    " type TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, action TEXT NOT NULL,"
    " fingerprint INTEGER NOT NULL, observed TEXT NOT NULL,"
    " final_state_unknown INTEGER NOT NULL, doc TEXT NOT NULL,"
    " state TEXT GENERATED ALWAYS AS (json_extract(doc, '$.state')) VIRTUAL,"
    " project TEXT GENERATED ALWAYS AS (json_extract(doc, '$.project')) VIRTUAL,"
    " parent TEXT GENERATED ALWAYS AS (json_extract(doc, '$.parent')) VIRTUAL,"
    " relations TEXT GENERATED ALWAYS AS (json_extract(doc, '$.relations')) VIRTUAL,"
    " source TEXT GENERATED ALWAYS AS (json_extract(doc, '$.source')) VIRTUAL,"
    " properties TEXT GENERATED ALWAYS AS (json_extract(doc, '$.properties')) VIRTUAL,"
    "{cloud} UNIQUE (type, key))",
    "CREATE VIEW live_entities AS SELECT type, key, state, project, parent, relations,"
    " source, properties, observed, seq{cloud_field} FROM entities WHERE action != 'delete'",
    "CREATE TABLE history (seq INTEGER PRIMARY KEY, type TEXT NOT NULL,"
    " committed REAL NOT NULL, doc TEXT NOT NULL)",
    "CREATE TABLE positions (name TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated REAL)",
)
_CLOUD_1 = " cloud TEXT GENERATED ALWAYS AS (json_extract(doc, '$.cloud')) VIRTUAL,"


@pytest.mark.parametrize("with_cloud", [True, False], ids=["schema 1", "schema 1 before clouds"])
def test_a_schema_1_store_is_upgraded_with_its_rows_seq_epoch_and_history(
    tmp_path, caplog, with_cloud
):
    """Its rows keep their order; the readers' columns (cloud too) come back in the views."""
    path = tmp_path / "s.db"
    told = [
        dataclasses.replace(ch("a"), seq=1),
        dataclasses.replace(ch("b", "down"), seq=2),
        Change(Action.DELETE, ch("c", ts=timeutil.now()).entity, 0, True, 3),  # not yet pruned
    ]
    db = sqlite3.connect(path)
    fields = {"cloud": _CLOUD_1 if with_cloud else "", "cloud_field": ", cloud" * with_cloud}
    for ddl in _SCHEMA_1:
        db.execute(ddl.format(**fields))
    db.executemany(
        "INSERT INTO meta VALUES (?, ?)", [("schema", "1"), ("epoch", "e1"), ("seq", "3")]
    )
    for c in told:
        doc = c.to_json().decode()
        e = c.entity
        row = (e.type, e.key, c.seq, str(c.action), signed(c.fingerprint), e.timestamp)
        fsu = int(c.final_state_unknown)
        db.execute("INSERT INTO entities VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*row, fsu, doc))
        db.execute("INSERT INTO history VALUES (?, ?, ?, ?)", (c.seq, "t", time.time(), doc))
    db.commit()
    db.close()
    caplog.set_level(logging.INFO, logger="synchronizer.dispatch.durable")
    d = reopen(path)
    assert (d.epoch, d.last_seq(), d.tombstone_count()) == ("e1", 3, 1)
    assert [(e.key, e.state) for e in d.get_all()] == [("a", "up"), ("b", "down")]
    assert [c.seq for c in d.history(0)] == [1, 2, 3]
    (update,) = d.dispatch([ch("a", "gone", action=Action.UPDATE, ts="2026-01-01T00:00:02Z")])
    assert update.seq == 4
    d.close()
    assert any("upgraded from schema 1 to 2" in r.getMessage() for r in caplog.records)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone() == (str(SCHEMA),)
    assert db.execute("SELECT key, state, cloud, seq FROM live_entities").fetchall() == [
        ("a", "gone", None, 4),
        ("b", "down", None, 2),
    ]
    assert db.execute(
        "SELECT key, json_extract(source, '$.plugin') FROM entities WHERE action = 'delete'"
    ).fetchall() == [("c", "p")]
    db.close()


def test_a_worker_reads_its_baseline_from_the_store(tmp_path):
    """read_baseline gives the live fingerprints of a plugin's types, or of what it stated."""
    path = tmp_path / "s.db"
    d = reopen(path)
    told = d.dispatch([ch("a"), ch("x", t="other")])
    d.dispatch([ch("gone", ts="2026-01-01T00:00:00Z")])
    d.dispatch([ch("gone", action=Action.DELETE, ts="2026-01-01T00:00:02Z")])
    assert read_baseline(str(path), "p", ["t"]) == {
        "t": {"a": told[0].fingerprint},
        "other": {"x": told[1].fingerprint},  # another type, last stated by plugin p
    }
    assert read_baseline(str(path), "q", ["t"]) == {"t": {"a": told[0].fingerprint}}
    assert read_baseline(str(tmp_path / "none.db"), "p", ["t"]) is None
    d.close()


def told(key: str, seq: int, state: str = "up") -> Change:
    return dataclasses.replace(ch(key, state), seq=seq)


def test_a_batchs_writes_read_back_at_once_and_keep_the_insertion_order(tmp_path):
    """Before commit every write reads back; an update keeps its row, a key re-stored goes last."""
    path = tmp_path / "s.db"
    store = SQLiteStore(str(path))
    table = store.table("t")
    for seq, key in enumerate("abcd", 1):
        table[key] = told(key, seq)
    store.commit(seq=4)
    store.prefetch({"t": ["a", "b", "c", "x"]})
    assert table.get("x") is None
    assert (table.get("b").seq, table.get("b").action) == (2, Action.CREATE)
    table["b"] = told("b", 5, "down")
    del table["c"]
    assert table.get("c") is None
    with pytest.raises(KeyError):
        del table["c"]
    table["c"] = told("c", 6)
    table["x"] = told("x", 7)
    del table["x"]
    assert table.get("b").seq == 5
    assert len(table) == 4  # a read of the rows themselves: the pending writes go first
    table["a"] = told("a", 8, "down")
    assert table["a"].seq == 8
    store.commit(seq=8)
    order = [(k, c.seq, c.entity.state) for k, c in table.items()]
    assert order == [("a", 8, "down"), ("b", 5, "down"), ("d", 4, "up"), ("c", 6, "up")]
    store.close()
    again = SQLiteStore(str(path))
    assert [(k, c.seq) for k, c in again.table("t").items()] == [(k, s) for k, s, _ in order]
    again.close()


def test_the_history_keeps_a_change_as_told_when_its_entry_is_retimed_in_the_same_batch(tmp_path):
    """A repeat later in the batch moves the entity's time on; the history keeps the told time."""
    d = reopen(tmp_path / "s.db")
    (first,) = d.dispatch([ch("a"), ch("a", ts="2026-01-01T00:00:09Z")])
    assert [c.entity.timestamp for c in d.history(0)] == [first.entity.timestamp]
    assert [e.timestamp for e in d.get_all()] == ["2026-01-01T00:00:09.000000Z"]
    d.close()


def test_a_second_store_on_the_same_file_is_refused(tmp_path):
    """The lock names the path and the holder's pid; it is free again after close()."""
    path = tmp_path / "s.db"
    first = SQLiteStore(str(path))
    with pytest.raises(StateLocked, match=rf"pid \d+\) holds the state at {path}"):
        SQLiteStore(str(path))
    first.close()
    SQLiteStore(str(path)).close()


@pytest.mark.parametrize(
    ("content", "suffix"),
    [
        pytest.param(b"this is not a database at all" * 100, ".corrupt-", id="not a database"),
        pytest.param(None, f".schema{SCHEMA + 1}-", id="newer schema"),
    ],
)
def test_a_corrupt_or_newer_store_is_moved_aside_and_the_store_starts_empty(
    tmp_path, caplog, content, suffix
):
    """Set aside with one error line naming it; the store opens empty, with a new epoch."""
    path = tmp_path / "s.db"
    if content is not None:
        path.write_bytes(content)
        old_epoch = None
    else:
        d = reopen(path)
        d.dispatch([ch("a")])
        old_epoch = d.epoch
        d.close()
        db = sqlite3.connect(path)
        db.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (str(SCHEMA + 1),))
        db.commit()
        db.close()
    caplog.set_level(logging.ERROR)
    store = SQLiteStore(str(path))
    assert (len(store), store.last_seq()) == (0, 0)
    assert store.epoch != old_epoch
    store.close()
    aside = [p.name for p in tmp_path.iterdir() if suffix in p.name]
    assert len(aside) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "synchronizer.dispatch.durable"]
    assert len(lines) == 1
    assert aside[0] in lines[0]
    assert "starting from an empty state" in lines[0]


@pytest.mark.parametrize("found_by", ["resync", "listing"])
def test_an_inferred_delete_lets_the_key_come_back_after_a_reopen(tmp_path, found_by):
    """A delete no service reported stays overrulable by a listing after a restart.

    A zone emptied of hosts is deleted (by a resync's sweep, or by its absence
    from a complete listing), and comes back when a host returns: the
    restarted (or failed-over) daemon must tell it again, not hold it an
    hour as a stale read of a delete the service reported.
    """
    path = tmp_path / "s.db"
    stamps = [timeutil.normalize(time.time() + i) for i in range(3)]  # recent: within the TTL
    d = reopen(path)
    d.dispatch([ch("zone-0", ts=stamps[0])])
    if found_by == "resync":
        gone = ch("zone-0", ts=stamps[1]).replace(
            action=Action.DELETE, fingerprint=0, final_state_unknown=True, inferred=True
        )
    else:  # as deletes.missing makes it: the key alone
        gone = Change(Action.DELETE, Entity("t", "zone-0", timestamp=stamps[1]), inferred=True)
    d.dispatch([gone])
    d.close()
    again = reopen(path)
    back = again.dispatch([ch("zone-0", ts=stamps[2])])
    assert [(c.action, c.key) for c in back] == [(Action.CREATE, "zone-0")]
    again.close()


def test_a_reported_delete_still_blocks_a_stale_poll_after_a_reopen(tmp_path):
    """A delete the service reported keeps its stale-read guard across a restart."""
    path = tmp_path / "s.db"
    stamps = [timeutil.normalize(time.time() + i) for i in range(3)]
    d = reopen(path)
    d.dispatch([ch("vm", ts=stamps[0])])
    d.dispatch([ch("vm", ts=stamps[1], action=Action.DELETE)])
    d.close()
    again = reopen(path)
    assert again.dispatch([ch("vm", ts=stamps[2])]) == []
    again.close()


def test_the_wal_stays_bounded_under_continuous_commits(tmp_path):
    """A long first listing does not grow the WAL without bound, nor does a reader stall it.

    Commits that never pause starve a checkpoint that yields to the writer:
    it never catches up, the WAL is never restarted and grew to several
    times the database (a 1,000,000-entity first listing left 2-4 GB).
    Past ``wal_limit`` the checkpointer waits for a pause between commits
    and restarts the WAL.  A reader holding an old snapshot (a CMDB query)
    only makes a restart wait and give up; the dispatcher goes on.
    """
    path = tmp_path / "s.db"
    limit = 4 * 1024 * 1024
    d = reopen(path, wal_limit=limit)
    wal = tmp_path / "s.db-wal"
    largest, n, started = 0, 0, time.monotonic()
    while time.monotonic() - started < 2.0:
        d.dispatch([ch(f"vm-{n + i}", "x" * 400) for i in range(500)])
        n += 500
        largest = max(largest, wal.stat().st_size)
    assert len(d.get_all()) == n
    assert largest < 4 * limit, f"the WAL grew to {largest} bytes for a limit of {limit}"

    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM entities").fetchone() == (n,)
    slowest, started = 0.0, time.monotonic()
    while time.monotonic() - started < 1.5:
        t0 = time.monotonic()
        d.dispatch([ch(f"vm-{n + i}", "x" * 400) for i in range(500)])
        n += 500
        slowest = max(slowest, time.monotonic() - t0)
    assert slowest < 5.0  # far below the 30 s a blocked writer waits before failing
    assert reader.execute("SELECT count(*) FROM entities").fetchone()[0] < n  # its snapshot
    reader.close()
    d.close()


def test_a_delete_that_overtook_its_create_still_holds_it_back_after_a_reopen(tmp_path):
    """The tombstone of a key never told is kept in the file like any other, and tells nobody."""
    path = tmp_path / "s.db"
    push = Source("push", "n")
    stamps = [timeutil.normalize(time.time() + i) for i in range(2)]
    create = ch("vm", ts=stamps[0])
    create = create.replace(entity=create.entity.replace(source=push))
    delete = Change(Action.DELETE, Entity("t", "vm", timestamp=stamps[1], source=push))
    d = reopen(path)
    assert d.dispatch([delete, create]) == []
    d.close()
    again = reopen(path)
    assert (again.last_seq(), again.get_all(), again.tombstone_count()) == (0, [], 1)
    assert again.dispatch([create]) == []
    assert again.store.history(0) == []
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM live_entities").fetchone() == (0,)
    again.close()
