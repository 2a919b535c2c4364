"""The EntryStore contract, held by the memory store and the SQLite file store alike."""

import pytest

from synchronizer.dispatch.store import FileStore, MemoryStore, open_store


@pytest.fixture(params=["memory", "file"])
def store(request, tmp_path):
    """Every test runs against both stores."""
    s = MemoryStore() if request.param == "memory" else FileStore(str(tmp_path / "entries.db"))
    yield s
    s.close()


def test_get_gives_what_was_put_or_the_default(store):
    """An entry reads back equal; a missing key gives the default, or KeyError by index."""
    table = store.table("t")
    table["a"] = b"\x00one"
    assert table.get("a") == b"\x00one"
    assert table["a"] == b"\x00one"
    assert table.get("zz") is None
    assert table.get("zz", "none") == "none"
    with pytest.raises(KeyError):
        table["zz"]


def test_put_replaces_and_delete_removes(store):
    """A second put replaces the entry; a delete removes it, and deleting nothing raises."""
    table = store.table("t")
    table["a"] = b"one"
    table["a"] = b"two"
    assert table.get("a") == b"two"
    assert len(table) == 1
    del table["a"]
    assert table.get("a") is None
    assert len(table) == 0
    with pytest.raises(KeyError):
        del table["a"]


def test_iteration_is_insertion_order_and_an_update_keeps_its_place(store):
    """items() lists keys as first stored; replacing keeps the place, re-storing goes last."""
    table = store.table("t")
    for key in "abcd":
        table[key] = key.encode()
    table["b"] = b"B"
    del table["c"]
    table["c"] = b"C"
    assert list(table.items()) == [("a", b"a"), ("b", b"B"), ("d", b"d"), ("c", b"C")]


def test_objects_read_back_as_themselves_in_their_place(store):
    """A value that is not bytes is read back as the very object, in insertion order."""
    table = store.table("t")
    thing = object()
    table["a"] = b"a"
    table["b"] = thing
    table["c"] = b"c"
    assert table.get("b") is thing
    assert [k for k, _ in table.items()] == ["a", "b", "c"]
    assert next(v for k, v in table.items() if k == "b") is thing
    assert len(table) == 3
    table["b"] = b"now bytes"
    assert table.get("b") == b"now bytes"
    table["a"] = thing
    assert [(k, v is thing) for k, v in table.items()] == [("a", True), ("b", False), ("c", False)]
    del table["a"]
    assert table.get("a") is None
    assert len(table) == 2


def test_types_are_apart_and_tables_are_in_order_of_first_use(store):
    """The same key under two types is two entries; tables() lists types as first used."""
    store.table("y")["k"] = b"y"
    store.table("x")["k"] = b"x"
    assert store.table("y") is store.table("y")
    assert store.table("x").get("k") == b"x"
    del store.table("y")["k"]
    assert store.table("x").get("k") == b"x"
    assert [type_ for type_, _ in store.tables()] == ["y", "x"]


def test_len_counts_every_table(store):
    """len(store) is the number of entries of all types together."""
    for i in range(5):
        store.table(f"t{i % 2}")[str(i)] = b"e"
    store.table("t2")["o"] = object()
    assert len(store) == 6
    assert (len(store.table("t0")), len(store.table("t1"))) == (3, 2)


def test_commit_keeps_everything_readable_and_close_is_idempotent(store):
    """commit() changes nothing readable; close() may be called twice."""
    store.table("t")["a"] = b"a"
    store.commit()
    assert store.table("t").get("a") == b"a"
    store.close()
    store.close()


def test_a_file_store_starts_empty_whatever_the_file_held(tmp_path):
    """The ledger file is per run: opening it empties whatever was there."""
    path = tmp_path / "entries.db"
    path.write_bytes(b"not a database")
    first = FileStore(str(path))
    first.table("t")["a"] = b"a"
    first.close()
    again = FileStore(str(path))
    assert len(again) == 0
    assert again.table("t").get("a") is None
    again.close()


@pytest.mark.parametrize(("path", "kind"), [(None, MemoryStore), ("ledger.db", FileStore)])
def test_open_store_follows_the_ledger_file_option(tmp_path, path, kind):
    """Without a ledger file the entries live in memory; with one, in that file."""
    store = open_store(str(tmp_path / path) if path else None)
    assert isinstance(store, kind)
    store.close()
