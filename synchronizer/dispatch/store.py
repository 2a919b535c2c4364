"""Where the dispatcher keeps its state: the storage interface and its stores.

Over 400 lines on purpose: the storage contract (its Protocols and their
documented guarantees) and the two per-run stores that implement it belong
together.

The ledger (:mod:`synchronizer.dispatch.ledger`) decides what an entry is
and when it changes; a store keeps entries, one :class:`EntryTable` per
entity type, behind the :class:`EntryStore` interface, and the stream's
state around them behind :class:`StateStore`: the epoch, the last
sequence number issued, a bounded history of recent changes and the
sinks' positions.  Three stores implement it:

* :class:`MemoryStore` (``state = memory``): the heap, for one run;
* :class:`FileStore` (``state = memory`` with ``ledger_file``): entries in a
  SQLite file emptied at start, the rest in the heap, for one run;
* :class:`~synchronizer.dispatch.durable.SQLiteStore` (``state = sqlite``,
  the default): everything in a SQLite file that outlives the process.

:func:`open_state` picks one from the configuration::

    >>> store = open_store(None)
    >>> table = store.table("nova.instance")
    >>> table["u1"] = b"entry"
    >>> table.get("u1"), len(store)
    (b'entry', 1)
    >>> store.close()

A store shared by a fleet (a SQL database behind oslo.db, issue 16) goes
behind the same interface: ``commit`` is then where it checks the
writer's fencing term (a compare-and-set on the partition's term in the
same transaction) and refuses the whole batch, raising, when another
owner took over; nothing of a refused batch is visible to any reader.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from oslo_config import cfg

    from synchronizer.model import Change

__all__ = [
    "EntryStore",
    "EntryTable",
    "FileStore",
    "MemoryStore",
    "StateStore",
    "open_state",
    "open_store",
    "persisted_baseline",
    "state_path",
]


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
    * ``commit(told=(), seq=None)``: makes every write so far durable (for
      a store that persists), appends ``told`` (the batch's told changes,
      in ``seq`` order) to the history and records ``seq`` as the last
      sequence number issued, all at once: after a crash a store holds a
      prefix of the batches.  The dispatcher calls it after admitting a
      batch, before any subscriber or sink sees the batch.
    * ``close()``: releases what the store holds (a connection, a file
      handle); idempotent.  A closed store must not be used again.
    * ``prefetch(keys)`` (optional; ``type → keys``): a hint, before a
      batch is admitted, of the entries it will look up; a store that
      reads entries from a file may read them all at once.  It changes
      nothing any method returns.

    Threading: none; the caller locks (the ledger is used under the
    dispatcher's lock).
    """

    def table(self, type_: str) -> EntryTable: ...

    def tables(self) -> list[tuple[str, EntryTable]]: ...

    def __len__(self) -> int: ...

    def commit(self, told: Sequence[Change] = (), seq: int | None = None) -> None: ...

    def close(self) -> None: ...


class StateStore(EntryStore, Protocol):
    """An :class:`EntryStore` plus the stream's state: epoch, seq, history, positions.

    Contract, beyond :class:`EntryStore`:

    * ``epoch``: an id made when the store was created; a position
      ``(epoch, seq)`` is meaningful only to a store of the same epoch.  A
      store for one run makes a new epoch every run.
    * ``durable``: whether the store outlives the process (then a restarted
      daemon resumes its seq, view and history).
    * ``keeps_changes``: whether entries are the told ``Change`` objects
      (kept in a form readable without this process's codec) rather than
      the ledger's compact ``bytes``.
    * ``last_seq()``: the last sequence number committed (0 for a new
      store); the dispatcher issues from the next one, so a sequence number
      never goes back.
    * ``tombstones()``: ``(type, key, observed, inferred)`` of every delete
      the store holds, oldest first (a restarted ledger's stale-read
      guards).  ``inferred``: no service reported it (a resync found it:
      final state unknown; or a listing lacked the key: no source); such a
      delete guards against nothing.
    * ``history(after, limit)``: up to ``limit`` committed changes with a
      seq above ``after``, in seq order; ``None`` when ``after`` is older
      than the history (changes after it are gone: the reader must relist).
      Every change above ``history_floor()`` is kept: there is no gap.
    * ``position(name)`` / ``save_position(name, seq)``: a sink's committed
      position (None: never saved).  The history is not trimmed past the
      position of a sink saved in this run.
    * ``view_docs(types)``: ``(seq, docs)``, the live entities' JSON and the
      seq they cover, read consistently without the dispatcher's lock; or
      None when the store cannot (the caller reads through the ledger).

    Threading: the :class:`EntryStore` part is the caller's to lock; the
    rest is thread-safe.
    """

    epoch: str
    durable: bool
    keeps_changes: bool

    def last_seq(self) -> int: ...

    def tombstones(self) -> list[tuple[str, str, str, bool]]: ...

    def history(self, after: int, limit: int = 1000) -> list[Change] | None: ...

    def history_floor(self) -> int: ...

    def position(self, name: str) -> int | None: ...

    def save_position(self, name: str, seq: int) -> None: ...

    def view_docs(self, types: Collection[str] | None) -> tuple[int, list[str]] | None: ...


def open_store(path: str | None) -> StateStore:
    """A store for one run: entries in the ``ledger_file`` at ``path``, or the heap."""
    return FileStore(path) if path else MemoryStore()


def state_path(conf: cfg.ConfigOpts) -> str | None:
    """The ``state_path`` option, resolved: a relative path is beside the file setting it.

    Unset, it is ``<stem>.state.db`` beside the first configuration file,
    and None without one (a configuration that is not in a file has no
    place to resume from: the state is then in memory).  The systemd unit
    sets ``/var/lib/synchronizer/state.db`` through the environment.
    """
    path = conf.state_path
    files = list(conf.config_file or ())
    if path is None:
        if not files:
            return None
        first = os.path.abspath(files[0])
        stem = os.path.splitext(os.path.basename(first))[0]
        return os.path.join(os.path.dirname(first), f"{stem}.state.db")
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return path
    location = conf.get_location("state_path")
    detail = getattr(location, "detail", None) if location is not None else None
    if detail and os.path.isfile(detail):
        return os.path.join(os.path.dirname(os.path.abspath(detail)), path)
    return os.path.abspath(path)


def open_state(conf: cfg.ConfigOpts) -> StateStore:
    """The store the ``state`` options describe (``sqlite``, the default, or ``memory``)."""
    bounds = {
        "history_max_changes": conf.history_max_changes,
        "history_max_age": conf.history_max_age,
    }
    path = state_path(conf) if conf.state == "sqlite" else None
    if path is None:
        return FileStore(conf.ledger_file, **bounds) if conf.ledger_file else MemoryStore(**bounds)
    from synchronizer.dispatch.durable import SQLiteStore

    return SQLiteStore(path, **bounds)


def persisted_baseline(
    conf: cfg.ConfigOpts, plugin: str, types: Collection[str]
) -> dict[str, dict[str, int]] | None:
    """What a collector worker starts from: the durable view's fingerprints of its entities.

    None with a store for one run (the worker then starts empty and resyncs).
    """
    path = state_path(conf) if conf.state == "sqlite" else None
    if path is None:
        return None
    from synchronizer import clouds
    from synchronizer.dispatch.durable import read_baseline

    return read_baseline(path, plugin, types, cloud=clouds.cloud_of(plugin))


class _RunState:
    """The stream's state for one run: a new epoch, history and positions in the heap."""

    durable = False
    keeps_changes = False

    def __init__(self, history_max_changes: int = 100_000, history_max_age: float = 3600.0) -> None:
        self.epoch = uuid.uuid4().hex[:16]
        self.history_max_changes = history_max_changes
        self.history_max_age = history_max_age
        self._seq = 0
        # (seq, committed at, change), in seq order; seqs are consecutive.
        self._history: collections.deque[tuple[int, float, Change]] = collections.deque()
        self._positions: dict[str, int] = {}
        self._state_lock = threading.Lock()

    def last_seq(self) -> int:
        return self._seq

    def tombstones(self) -> list[tuple[str, str, str, bool]]:
        return []

    def _record(self, told: Sequence[Change], seq: int | None) -> None:
        now = time.time()
        with self._state_lock:
            history = self._history
            history.extend((c.seq, now, c) for c in told)
            if seq is not None and seq > self._seq:
                self._seq = seq
            floor = min(self._positions.values(), default=self._seq)
            cutoff = now - self.history_max_age
            while (
                history
                and history[0][0] <= floor
                and (len(history) > self.history_max_changes or history[0][1] < cutoff)
            ):
                history.popleft()

    def history(self, after: int, limit: int = 1000) -> list[Change] | None:
        with self._state_lock:
            history = self._history
            first = history[0][0] if history else self._seq + 1
            if after < first - 1:
                return None
            start = max(0, after + 1 - first)
            return [c for _, _, c in itertools.islice(history, start, start + limit)]

    def history_floor(self) -> int:
        with self._state_lock:
            return self._history[0][0] - 1 if self._history else self._seq

    def position(self, name: str) -> int | None:
        with self._state_lock:
            return self._positions.get(name)

    def save_position(self, name: str, seq: int) -> None:
        with self._state_lock:
            self._positions[name] = seq

    def view_docs(self, types: Collection[str] | None) -> None:
        return None


class MemoryStore(_RunState):
    """Entries in the heap, one dict per type (see :class:`StateStore`)."""

    def __init__(self, history_max_changes: int = 100_000, history_max_age: float = 3600.0) -> None:
        super().__init__(history_max_changes, history_max_age)
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

    def commit(self, told: Sequence[Change] = (), seq: int | None = None) -> None:
        """Nothing to make durable (the heap is per run): the history is kept."""
        self._record(told, seq)

    def close(self) -> None:
        self._tables.clear()


class FileStore(_RunState):
    """Entries in a SQLite file, emptied when opened (see :class:`StateStore`).

    What subscribers were told is per run, so the file holds nothing to
    recover: it is emptied at start and written with neither journal nor
    fsync.  It keeps the process's memory flat however many entities there
    are, for a few microseconds more per read and write.
    """

    def __init__(
        self, path: str, history_max_changes: int = 100_000, history_max_age: float = 3600.0
    ) -> None:
        super().__init__(history_max_changes, history_max_age)
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

    def commit(self, told: Sequence[Change] = (), seq: int | None = None) -> None:
        """Nothing to make durable (the file is emptied at the next start)."""
        self._record(told, seq)

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
