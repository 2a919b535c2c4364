"""Where the ledger keeps its entries: the storage interface and its stores.

The ledger (:mod:`synchronizer.dispatch.ledger`) decides what an entry is
and when it changes; a store only keeps entries, one :class:`EntryTable`
per entity type, behind the :class:`EntryStore` interface.  Two stores
implement it: :class:`MemoryStore` (the heap, the default) and
:class:`FileStore` (a SQLite file, the ``ledger_file`` option).
:func:`open_store` picks one from the configuration::

    >>> store = open_store(None)
    >>> table = store.table("nova.instance")
    >>> table["u1"] = b"entry"
    >>> table.get("u1"), len(store)
    (b'entry', 1)
    >>> store.close()

A durable store (one that outlives the process) goes behind the same
interface: its tables then start with what it holds, and ``commit`` is
where its writes become durable.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

__all__ = ["EntryStore", "EntryTable", "FileStore", "MemoryStore", "open_store"]


class EntryTable(Protocol):
    """One entity type's entries: key → entry.

    Contract (what each method guarantees):

    * ``get(key, default=None)``: the entry stored under ``key``, or
      ``default`` when there is none.
    * ``table[key]``: the same, raising ``KeyError`` when there is none.
    * ``table[key] = entry``: stores ``entry`` under ``key``, replacing any
      entry there; readable at once by every method.
    * ``del table[key]``: removes the entry; ``KeyError`` when there is none.
    * ``items()``: every ``(key, entry)`` in insertion order.  Replacing an
      entry keeps the key's place; a key deleted and stored again goes to
      the end.  Writing to the table while iterating it is undefined (take
      a list first).
    * ``len(table)``: the number of keys.

    Values: an entry is ``bytes`` (the ledger's encoded entry).  Every store
    reads back bytes equal to those stored, and a durable store persists
    them.  Any other object (the ledger keeps a ``Change`` so when it cannot
    encode one) is held by reference in this process's memory, read back as
    the very same object, in its place in the insertion order, and never
    serialised nor persisted.

    A plain ``dict`` satisfies this contract, which is why the memory store's
    tables are dicts: the ledger's hot path then pays no call of ours.

    Threading: none; the caller locks.
    """

    def get(self, key: str, default: Any = None) -> Any: ...

    def __getitem__(self, key: str) -> Any: ...

    def __setitem__(self, key: str, entry: Any) -> None: ...

    def __delitem__(self, key: str) -> None: ...

    def items(self) -> Iterable[tuple[str, Any]]: ...

    def __len__(self) -> int: ...


class EntryStore(Protocol):
    """The ledger's entries, one :class:`EntryTable` per entity type.

    Contract:

    * ``table(type_)``: the table of that type, the same object on every
      call; an unknown type gets an empty table.
    * ``tables()``: every ``(type, table)`` the store has, in order of first
      use (for a durable store: what it held when opened, then new types).
    * ``len(store)``: entries in all tables.
    * ``commit()``: makes every write so far durable, for a store that
      persists; the memory and file stores (both per run) do nothing.  The
      dispatcher calls it after admitting a batch, before any subscriber
      sees the batch.
    * ``close()``: releases what the store holds (a connection, a file
      handle); idempotent.  A closed store must not be used again.

    Threading: none; the caller locks (the ledger is used under the
    dispatcher's lock).
    """

    def table(self, type_: str) -> EntryTable: ...

    def tables(self) -> list[tuple[str, EntryTable]]: ...

    def __len__(self) -> int: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...


def open_store(path: str | None) -> EntryStore:
    """The store the ``ledger_file`` option describes: a file, or the heap when unset."""
    return FileStore(path) if path else MemoryStore()


class MemoryStore:
    """Entries in the heap, one dict per type (see :class:`EntryStore`)."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, Any]] = {}

    def table(self, type_: str) -> dict[str, Any]:
        table = self._tables.get(type_)
        if table is None:
            table = self._tables[type_] = {}
        return table

    def tables(self) -> list[tuple[str, EntryTable]]:
        return list(self._tables.items())

    def __len__(self) -> int:
        return sum(len(table) for table in self._tables.values())

    def commit(self) -> None:
        """Nothing to make durable: the heap is per run."""

    def close(self) -> None:
        self._tables.clear()


class FileStore:
    """Entries in a SQLite file, emptied when opened (see :class:`EntryStore`).

    What subscribers were told is per run, so the file holds nothing to
    recover: it is emptied at start and written with neither journal nor
    fsync.  It keeps the process's memory flat however many entities there
    are, for a few microseconds more per read and write.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.db = _open_file(path)
        self._tables: dict[str, _FileTable] = {}

    def table(self, type_: str) -> _FileTable:
        table = self._tables.get(type_)
        if table is None:
            table = self._tables[type_] = _FileTable(self.db, type_)
        return table

    def tables(self) -> list[tuple[str, EntryTable]]:
        return list(self._tables.items())

    def __len__(self) -> int:
        (n,) = self.db.execute("SELECT count(*) FROM entries").fetchone()
        return int(n)

    def commit(self) -> None:
        """Nothing to make durable: the file is emptied at the next start."""

    def close(self) -> None:
        self.db.close()


_MISSING = object()


class _FileTable:
    """One type's rows of the file.

    An entry that is not bytes is held in memory; its row (an SQL NULL)
    keeps its place in the insertion order.
    """

    def __init__(self, db: sqlite3.Connection, type_: str) -> None:
        self._db, self._type = db, type_
        self._objects: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        if self._objects:
            obj = self._objects.get(key, _MISSING)
            if obj is not _MISSING:
                return obj
        row = self._db.execute(_SELECT, (self._type, key)).fetchone()
        return default if row is None else row[0]

    def __getitem__(self, key: str) -> Any:
        entry = self.get(key, _MISSING)
        if entry is _MISSING:
            raise KeyError(key)
        return entry

    def __setitem__(self, key: str, entry: Any) -> None:
        if isinstance(entry, bytes):
            self._db.execute(_UPSERT, (self._type, key, entry))
            if self._objects:
                self._objects.pop(key, None)
        else:
            self._db.execute(_UPSERT, (self._type, key, None))
            self._objects[key] = entry

    def __delitem__(self, key: str) -> None:
        if self._db.execute(_DELETE, (self._type, key)).rowcount == 0:
            raise KeyError(key)
        self._objects.pop(key, None)

    def items(self) -> Iterator[tuple[str, Any]]:
        objects = self._objects
        for key, entry in self._db.execute(_SCAN, (self._type,)):
            yield key, (objects[key] if entry is None else entry)

    def __len__(self) -> int:
        (n,) = self._db.execute(_COUNT, (self._type,)).fetchone()
        return int(n)


_SELECT = "SELECT entry FROM entries WHERE type = ? AND key = ?"
_UPSERT = (
    "INSERT INTO entries (type, key, entry) VALUES (?, ?, ?)"
    " ON CONFLICT (type, key) DO UPDATE SET entry = excluded.entry"
)
_DELETE = "DELETE FROM entries WHERE type = ? AND key = ?"
_COUNT = "SELECT count(*) FROM entries WHERE type = ?"
_SCAN = "SELECT key, entry FROM entries WHERE type = ? ORDER BY rowid"


def _open_file(path: str) -> sqlite3.Connection:
    """The file, emptied: whatever was there (a past run's, or not a database) goes."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    # The caller locks (see EntryStore), so any thread may use the connection.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # Nothing to recover after a crash (the file is emptied at start), so no
    # journal and no fsync: each write is a plain page update.
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    # rowid order is insertion order, as in a dict: an upsert keeps its row
    # (and place), a delete and re-insert moves the key to the end.  A NULL
    # entry marks one held in memory (see _FileTable).
    db.execute(
        "CREATE TABLE entries (type TEXT NOT NULL, key TEXT NOT NULL, entry BLOB,"
        " UNIQUE (type, key))"
    )
    return db
