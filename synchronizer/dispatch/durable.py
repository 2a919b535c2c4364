"""The durable state store: the ledger, the stream's history and positions in SQLite.

Over 400 lines on purpose: one store implementation with its schema,
recovery and locking, documented together.

:class:`SQLiteStore` implements :class:`~synchronizer.dispatch.store.StateStore`
in one SQLite file (WAL): what subscribers were last told of each entity
(the view, tombstones included), the last sequence number issued, the
store's *epoch* (an id made when the file is created), a bounded history
of recent changes, and the committed positions of the sinks.  A batch of
changes and the sequence number it reached are committed in one
transaction before any subscriber sees them (DESIGN.md rule 7): after a
crash at any point the store holds a prefix of what was dispatched, never
a sequence number that was handed out but not kept.

The file is meant to be read with SQL as well (a CMDB can query the
cloud's current state without writing a consumer)::

    sqlite3 -readonly state.db \\
      "SELECT type, key, state, project, parent, properties, seq FROM live_entities"

Tables (schema version :data:`SCHEMA`):

``entities``   one row per entity told: ``type``, ``key``, ``seq`` (of the
               last change told), ``action`` (``create``/``update``, or
               ``delete`` for a tombstone), ``fingerprint``, ``observed``
               (UTC ISO 8601), ``final_state_unknown``, ``doc`` (the change's
               JSON, as consumers get it) and, computed from ``doc`` when
               read, ``state``, ``project``, ``parent``, ``relations``,
               ``source``, ``properties`` (JSON) and ``cloud`` (null for an
               entity of no cloud).  A view of the table ``entity_rows``,
               which holds the stored columns only.  ``live_entities`` is
               the same without tombstones.
``history``    ``seq``, ``type``, ``committed`` (Unix time), ``doc``: the last
               changes told, bounded by ``history_max_changes`` and
               ``history_max_age`` (never trimmed past a running sink's
               position).
``positions``  ``name``, ``seq``: how far each sink got.
``meta``       ``schema``, ``epoch``, ``seq``.

Readers never block the daemon: WAL gives each reader a consistent snapshot
while the dispatcher writes.  A file that is not a database, is corrupt, or
holds a newer schema is moved aside (``<path>.corrupt-<time>`` or
``<path>.schema<N>-<time>``) with a log line, and the daemon starts empty;
it never crashes on its own state.  A second daemon on the same file is
refused (:class:`~synchronizer.errors.StateLocked`): the file's lock
(``<path>.lock``, ``flock``) names the holder's pid.

A batch's way through: the dispatcher names the batch's keys first
(:meth:`SQLiteStore.prefetch`), which reads their headers (seq, action,
fingerprint, time, rowid) in one statement per type; the ledger's
writes wait in memory and go into the transaction together at
``commit`` (rows known by their rowid updated in place, the rest
inserted or deleted, each kind in one ``executemany``), then the history
(the same JSON text as the rows) and ``seq``, then ``COMMIT``.  What a
change costs is then SQLite's page I/O: a header read that misses the
page cache, and the WAL frame of the row's page at commit.

Durability: ``synchronous = NORMAL`` in WAL mode, so a commit survives the
process being killed at any point (the case of every restart, crash and
SIGKILL); a power loss may lose the last commits before a checkpoint, never
corrupt the file.

Threading: the entry tables and ``commit`` are used under the dispatcher's
lock (see :class:`~synchronizer.dispatch.store.EntryStore`); the history,
positions and view reads are thread-safe, on connections of their own.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

import orjson

from synchronizer.dispatch.codec import Stored
from synchronizer.dispatch.rows import change_of, doc_of, signed, unsigned
from synchronizer.errors import StateLocked
from synchronizer.model import Action, Change

LOG = logging.getLogger(__name__)

__all__ = ["SCHEMA", "SQLiteStore", "read_baseline"]

SCHEMA = 2
TRIM_EVERY = 30.0  # seconds between history trims (a trim reads what it drops)
CHECKPOINT_EVERY = 1.0  # seconds between WAL checkpoints (off the dispatcher's thread)
# Bytes of WAL past which a checkpoint waits for a pause between commits and
# restarts the WAL (journal_size_limit then cuts the file back to it).
WAL_LIMIT = 64 * 1024 * 1024
RESTART_WAIT_MS = 100  # the longest a restart holds the writer while a reader lags
CACHE_KIB = 8192  # the writer's page cache (see SQLiteStore.__init__)
READER_CACHE_KIB = 512  # the reader's: it scans (views, history), it does not look up
_ACTIONS = {str(a): a for a in Action}
_ABSENT = object()  # no pending write for the key
_GONE = object()  # a pending delete

# What SQL readers see of each row, computed from its document when read.  A
# view, not generated columns: SQLite computes a table's generated columns on
# every UPDATE (each a parse of the document), which made the columns of
# schema 1 cost each in-place update 3 to 5 µs.
_ENTITIES_VIEW = (
    "CREATE VIEW entities AS SELECT type, key, seq, action, fingerprint, observed,"
    " final_state_unknown, doc,"
    " json_extract(doc, '$.state') AS state,"
    " json_extract(doc, '$.project') AS project,"
    " json_extract(doc, '$.parent') AS parent,"
    " json_extract(doc, '$.relations') AS relations,"
    " json_extract(doc, '$.source') AS source,"
    " json_extract(doc, '$.properties') AS properties,"
    " json_extract(doc, '$.cloud') AS cloud"  # null for an entity of no cloud
    " FROM entity_rows"
)
_LIVE_VIEW = (
    "CREATE VIEW live_entities AS SELECT type, key, state, project, parent, relations,"
    " source, properties, observed, seq, cloud FROM entities WHERE action != 'delete'"
)

_DDL = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # rowid order is insertion order (an upsert keeps its row), as EntryTable requires.
    "CREATE TABLE entity_rows ("
    " type TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, action TEXT NOT NULL,"
    " fingerprint INTEGER NOT NULL, observed TEXT NOT NULL,"
    " final_state_unknown INTEGER NOT NULL, doc TEXT NOT NULL, UNIQUE (type, key))",
    _ENTITIES_VIEW,
    _LIVE_VIEW,
    "CREATE TABLE history (seq INTEGER PRIMARY KEY, type TEXT NOT NULL,"
    " committed REAL NOT NULL, doc TEXT NOT NULL)",
    "CREATE TABLE positions (name TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated REAL)",
)

_SELECT = (
    "SELECT seq, action, fingerprint, observed, final_state_unknown, rowid"
    " FROM entity_rows WHERE type = ? AND key = ?"
)
_DOC = "SELECT doc, fingerprint FROM entity_rows WHERE rowid = ?"
_PREFETCH = (
    "SELECT key, seq, action, fingerprint, observed, final_state_unknown, rowid"
    " FROM entity_rows WHERE type = ? AND key IN (SELECT value FROM json_each(?))"
)
_UPDATE = (
    "UPDATE entity_rows SET seq = ?, action = ?, fingerprint = ?, observed = ?,"
    " final_state_unknown = ?, doc = ? WHERE rowid = ?"
)
_INSERT = (
    "INSERT INTO entity_rows (type, key, seq, action, fingerprint, observed,"
    " final_state_unknown, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELETE = "DELETE FROM entity_rows WHERE rowid = ?"
_SCAN = "SELECT key, doc, fingerprint FROM entity_rows WHERE type = ? ORDER BY rowid"


class SQLiteStore:
    """The ledger's entries, the history and positions in one SQLite file.

    See the module docstring for the file's layout and guarantees, and
    :class:`~synchronizer.dispatch.store.StateStore` for the contract.
    Entries are the told :class:`~synchronizer.model.Change` objects
    themselves (``keeps_changes``): the file keeps them readable, and
    their content decodes without any of this process's codec state.
    """

    durable = True
    keeps_changes = True

    def __init__(
        self,
        path: str,
        *,
        history_max_changes: int = 500_000,
        history_max_age: float = 3600.0,
        wal_limit: int = WAL_LIMIT,
    ) -> None:
        self.path = os.path.abspath(path)
        self.wal_limit = wal_limit
        self.history_max_changes = history_max_changes
        self.history_max_age = history_max_age
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._lockfile = _lock(self.path)
        try:
            self.db = _open_checked(self.path)
            # The ledger's reads are random over the whole view: a page cache of
            # its own keeps the B-tree's inner pages and, at 100,000 entities,
            # most of the (type, key) index.  Bounded whatever the size: at
            # 1,000,000 entities 8 MiB is 8 B an entity of resident memory
            # (16 MiB, the cache before, made B3 miss its 200 B).
            self.db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            # Checkpoints (WAL pages copied back and the file synced) run on a
            # thread of their own, not inside the dispatcher's commits.
            self.db.execute("PRAGMA wal_autocheckpoint = 0")
            # A WAL grown by a first listing is cut back when it restarts.
            self.db.execute(f"PRAGMA journal_size_limit = {wal_limit}")
            self.epoch, self._seq = _meta(self.db)
            self._reader = _connect(self.path)
            self._reader.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")
        except BaseException:
            self._lockfile.close()
            raise
        self._read_lock = threading.Lock()
        self._tables: dict[str, _SQLiteTable] = {
            t: _SQLiteTable(self, t) for (t,) in self.db.execute(_TYPES).fetchall()
        }
        # Tables with pending writes or headers read for this batch, and the JSON
        # of what was flushed (id → (change, JSON): the history reuses it).
        self._dirty: dict[str, _SQLiteTable] = {}
        self._docs: dict[int, tuple[Change, str]] = {}
        self._pins: dict[str, int] = {}  # running sinks' positions: the history keeps them
        # The first trim waits: the sinks' feeds pin their positions first.
        self._trimmed_at = time.time()
        self._closed = False
        self._stopping = threading.Event()
        self._wake = threading.Event()  # the WAL passed its limit: checkpoint now
        self._wal = self.path + "-wal"
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="state-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Copy the WAL back into the file every second; restart a WAL grown past its limit.

        A passive checkpoint never waits for the dispatcher, so under commits
        that never pause (a first listing) it never catches up and the WAL
        is never restarted: it grew to several times the database.  Past
        ``wal_limit``, once the passive round has copied the bulk, a
        ``RESTART`` checkpoint takes the writer's lock between two commits,
        copies the few frames left and lets the next commit write the WAL
        from its start.  It waits at most ``RESTART_WAIT_MS`` for a reader
        on an older snapshot (a long SQL query): then it gives up until the
        next round, and the dispatcher goes on.  A commit that finds the WAL
        past its limit wakes the loop at once rather than at the next second.
        """
        db = _connect(self.path)
        db.execute("PRAGMA cache_size = -256")  # it copies pages; it needs no cache
        db.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
        try:
            while not self._stopping.is_set():
                self._wake.wait(CHECKPOINT_EVERY)
                self._wake.clear()
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    if _size(self._wal) > self.wal_limit:
                        db.execute("PRAGMA wal_checkpoint(RESTART)")
                except sqlite3.Error as exc:  # busy or I/O: the next round retries
                    LOG.debug("State checkpoint skipped: %s", exc)
        finally:
            db.close()

    # -- EntryStore --------------------------------------------------------

    def table(self, type_: str) -> _SQLiteTable:
        table = self._tables.get(type_)
        if table is None:
            table = self._tables[type_] = _SQLiteTable(self, type_)
        return table

    def tables(self) -> list[tuple[str, Any]]:
        return list(self._tables.items())

    def __len__(self) -> int:
        self._flush()
        (n,) = self.db.execute("SELECT count(*) FROM entity_rows").fetchone()
        return int(n)

    def prefetch(self, keys: Mapping[str, Iterable[str]]) -> None:
        """Read the headers of a batch's keys (type → keys) in one statement per type."""
        for type_, of_type in keys.items():
            self.table(type_).prefetch(of_type)

    def _flush(self) -> None:
        """Write every table's pending entries into the open transaction."""
        for table in self._dirty.values():
            if table.pending:
                self._begin()
            table.flush(self._docs)
        self._dirty.clear()

    def _begin(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN")

    def _write(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        self._begin()
        return self.db.execute(sql, params)

    def commit(self, told: Sequence[Change] = (), seq: int | None = None) -> None:
        """One transaction: the entries written, ``told`` into the history, ``seq``."""
        self._flush()
        docs = self._docs
        now = time.time()
        if told:
            rows = [(c.seq, c.entity.type, now, doc_of(c, docs)) for c in told]
            self._begin()
            self.db.executemany("INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?)", rows)
        if seq is not None and seq > self._seq:
            self._write("UPDATE meta SET value = ? WHERE name = 'seq'", (str(seq),))
            self._seq = seq
        docs.clear()
        if self.db.in_transaction:
            self.db.execute("COMMIT")
            if _size(self._wal) > self.wal_limit:
                self._wake.set()
        if now - self._trimmed_at >= TRIM_EVERY:
            self.trim()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._wake.set()
        self._checkpointer.join(10)
        with contextlib.suppress(sqlite3.Error):
            self._flush()
            if self.db.in_transaction:
                self.db.execute("COMMIT")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.close()
        with self._read_lock:
            self._reader.close()
        self._lockfile.close()

    # -- StateStore --------------------------------------------------------

    def last_seq(self) -> int:
        return self._seq

    def tombstones(self) -> list[tuple[str, str, str, bool]]:
        self._flush()
        rows = self.db.execute(
            "SELECT type, key, observed, final_state_unknown OR source IS NULL FROM entities"
            " WHERE action = 'delete' ORDER BY seq"
        )
        return [(t, k, o, bool(inferred)) for t, k, o, inferred in rows]

    def history(self, after: int, limit: int = 1000) -> list[Change] | None:
        with self._read_lock:
            return self._history(after, limit)

    def _history(self, after: int, limit: int) -> list[Change] | None:
        if after < self._floor():
            return None
        rows = self._reader.execute(
            "SELECT doc FROM history WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        )
        return [Change.from_dict(orjson.loads(doc)) for (doc,) in rows]

    def history_floor(self) -> int:
        with self._read_lock:
            return self._floor()

    def _floor(self) -> int:
        """The oldest position the history resumes from (every change after it is kept)."""
        (first,) = self._reader.execute("SELECT min(seq) FROM history").fetchone()
        if first is None:
            return self._seq_committed()
        return int(first) - 1

    def _seq_committed(self) -> int:
        (value,) = self._reader.execute("SELECT value FROM meta WHERE name = 'seq'").fetchone()
        return int(value)

    def view_docs(self, types: Collection[str] | None) -> tuple[int, list[str]]:
        """A consistent read of the live entities' JSON and the seq it covers.

        On a connection of its own, in one read transaction (a WAL snapshot):
        the dispatcher goes on writing meanwhile.
        """
        with self._read_lock:
            db = self._reader
            db.execute("BEGIN")
            try:
                seq = self._seq_committed()
                sql = "SELECT doc FROM entity_rows WHERE action != 'delete'"
                if types is None:
                    rows = db.execute(sql + " ORDER BY rowid")
                else:
                    marks = ",".join("?" * len(types))
                    rows = db.execute(f"{sql} AND type IN ({marks}) ORDER BY rowid", list(types))
                docs = [doc for (doc,) in rows]
            finally:
                db.execute("COMMIT")
        return seq, docs

    def position(self, name: str) -> int | None:
        with self._read_lock:
            row = self._reader.execute(
                "SELECT seq FROM positions WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else int(row[0])

    def save_position(self, name: str, seq: int) -> None:
        """Record how far the sink ``name`` got (its own short transaction)."""
        with self._read_lock:
            self._pins[name] = seq
            with self._reader:
                self._reader.execute(
                    "INSERT INTO positions VALUES (?, ?, ?) ON CONFLICT (name)"
                    " DO UPDATE SET seq = excluded.seq, updated = excluded.updated",
                    (name, seq, time.time()),
                )

    def trim(self) -> int:
        """Drop history beyond the bounds (count, age), never past a running sink."""
        self._trimmed_at = time.time()
        with self._read_lock:
            db = self._reader
            keep_from = self._seq - self.history_max_changes
            # The first change young enough to keep, walking the key (seq) from
            # the oldest: it reads the aged rows only, not the whole history
            # (the times grow with seq; one set back by the clock only waits).
            young = db.execute(
                "SELECT seq FROM history WHERE committed >= ? ORDER BY seq LIMIT 1",
                (time.time() - self.history_max_age,),
            ).fetchone()
            aged = young[0] - 1 if young is not None else self._seq
            cut = max(keep_from, aged)
            if self._pins:
                cut = min(cut, min(self._pins.values()))
            if cut <= 0:
                return 0
            with db:
                return db.execute("DELETE FROM history WHERE seq <= ?", (cut,)).rowcount


class _SQLiteTable:
    """One type's rows (see :class:`~synchronizer.dispatch.store.EntryTable`).

    Entries are told changes.  Writes wait in ``_pending`` (key → the
    change, or ``_GONE``) and reach the store's open transaction together
    (:meth:`flush`, at ``commit`` or before a read of the rows themselves):
    a batch is a few ``executemany`` calls rather than a statement per
    change.  Reads look at the pending writes first, then at the headers
    read for the batch (``prefetch``, or one ``SELECT`` per key), so every
    write is readable at once, as the contract says.
    """

    def __init__(self, store: SQLiteStore, type_: str) -> None:
        self._store, self._type = store, type_
        self._pending: dict[str, Any] = {}  # key → Change, or _GONE
        self._rowids: dict[str, int | None] = {}  # pending key → its row before the batch
        self._reborn: set[str] = set()  # pending keys deleted, then stored again
        self._heads: dict[str, tuple[Any, ...] | None] = {}  # key → header row (None: no row)

    @property
    def pending(self) -> bool:
        """Whether writes wait for :meth:`flush`."""
        return bool(self._pending)

    def prefetch(self, keys: Iterable[str]) -> None:
        """Read the headers of ``keys`` in one statement (a batch's lookups at once)."""
        heads, pending = self._heads, self._pending
        wanted = [k for k in keys if k not in heads and k not in pending]
        if not wanted:
            return
        db = self._store.db
        for key, *head in db.execute(_PREFETCH, (self._type, orjson.dumps(wanted).decode())):
            heads[key] = tuple(head)
        for key in wanted:
            heads.setdefault(key, None)
        self._store._dirty[self._type] = self  # the headers are this batch's only

    def _head(self, key: str) -> tuple[Any, ...] | None:
        heads = self._heads
        if key in heads:
            return heads[key]
        row = heads[key] = self._store.db.execute(_SELECT, (self._type, key)).fetchone()
        self._store._dirty[self._type] = self
        return row

    def get(self, key: str, default: Any = None) -> Any:
        """The entry's header, its document parsed only when asked (see ``Stored``)."""
        entry = self._pending.get(key, _ABSENT)
        if entry is not _ABSENT:
            return default if entry is _GONE else entry
        row = self._head(key)
        if row is None:
            return default
        seq, action, fp, observed, fsu, rowid = row
        db = self._store.db

        def load() -> Change:
            return change_of(*db.execute(_DOC, (rowid,)).fetchone())

        return Stored(unsigned(fp), seq, _ACTIONS[action], observed, bool(fsu), load)

    def __getitem__(self, key: str) -> Change:
        entry = self.get(key)
        if entry is None:
            raise KeyError(key)
        return entry if isinstance(entry, Change) else entry.change()

    def __setitem__(self, key: str, change: Change) -> None:
        pending = self._pending
        was = pending.get(key, _ABSENT)
        if was is _GONE:
            del pending[key]  # stored again after a delete: a new row, last in order
            self._reborn.add(key)
        elif was is _ABSENT:
            row = self._head(key)
            self._rowids[key] = None if row is None else row[-1]
        pending[key] = change
        self._store._dirty[self._type] = self

    def __delitem__(self, key: str) -> None:
        pending = self._pending
        was = pending.get(key, _ABSENT)
        if was is _GONE:
            raise KeyError(key)
        if was is _ABSENT:
            row = self._head(key)
            if row is None:
                raise KeyError(key)
            self._rowids[key] = row[-1]
        pending[key] = _GONE
        self._store._dirty[self._type] = self

    def flush(self, docs: dict[int, tuple[Change, str]]) -> None:
        """Write the pending entries into the open transaction; note their JSON in ``docs``.

        A row that was there before the batch is updated in place (by its
        rowid), or deleted; a key stored again after a delete loses its old
        row and gets a new one; the rest are inserted, in the order first
        stored (the rowid order ``items`` follows).
        """
        gone: list[tuple[int]] = []
        updates: list[tuple[Any, ...]] = []
        inserts: list[tuple[Any, ...]] = []
        rowids, reborn, type_ = self._rowids, self._reborn, self._type
        for key, entry in self._pending.items():
            rowid = rowids.get(key)
            if rowid is not None and (entry is _GONE or key in reborn):
                gone.append((rowid,))
                rowid = None
            if entry is _GONE:
                continue
            doc = entry.to_json().decode()
            docs[id(entry)] = (entry, doc)
            values = (
                entry.seq,
                str(entry.action),
                signed(entry.fingerprint),
                entry.entity.timestamp,
                int(entry.final_state_unknown),
                doc,
            )
            if rowid is None:
                inserts.append((type_, key, *values))
            else:
                updates.append((*values, rowid))
        db = self._store.db
        if gone:
            db.executemany(_DELETE, gone)
        if updates:
            updates.sort(key=itemgetter(-1))  # in the file's order: neighbours share pages
            db.executemany(_UPDATE, updates)
        if inserts:
            db.executemany(_INSERT, inserts)
        self._pending.clear()
        rowids.clear()
        reborn.clear()
        self._heads.clear()

    def items(self) -> Iterator[tuple[str, Change]]:
        self._store._flush()
        for key, doc, fp in self._store.db.execute(_SCAN, (self._type,)).fetchall():
            yield key, change_of(doc, fp)

    def __len__(self) -> int:
        self._store._flush()
        (n,) = self._store.db.execute(
            "SELECT count(*) FROM entity_rows WHERE type = ?", (self._type,)
        ).fetchone()
        return int(n)


_TYPES = "SELECT DISTINCT type FROM entity_rows"
_BASELINE = "SELECT type, key, fingerprint FROM entities WHERE action != 'delete'"
_BY_PLUGIN = "json_extract(doc, '$.source.plugin')"


def read_baseline(
    path: str, plugin: str, types: Collection[str], *, cloud: str | None = None
) -> dict[str, dict[str, int]] | None:
    """``type → key → fingerprint`` of the live entities a plugin owns, in the store at ``path``.

    Owned as a resync counts it (:meth:`synchronizer.deletes.Resync.owns`):
    of the plugin's ``cloud`` (None: of no cloud), and of one of ``types``,
    or last stated by ``plugin`` (a plugin that declares no types, such as
    ``static``).  What a collector worker starts from
    (read-only, while the daemon writes); None when there is no store there
    yet, or it cannot be read (the worker then starts empty and resyncs).
    """
    if not os.path.exists(path):
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        marks = ",".join("?" * len(types))
        sql = f"{_BASELINE} AND (type IN ({marks}) OR {_BY_PLUGIN} = ?) AND cloud IS ?"
        rows = db.execute(sql, [*types, plugin, cloud])  # placeholders only
        baseline: dict[str, dict[str, int]] = {}
        for type_, key, fp in rows:
            baseline.setdefault(type_, {})[key] = unsigned(fp)
        return baseline
    except sqlite3.Error as exc:
        LOG.warning("Cannot read the baseline from the state at %s (%s); starting empty", path, exc)
        return None
    finally:
        db.close()


# -- opening, checking, moving aside ---------------------------------------------


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _connect(path: str) -> sqlite3.Connection:
    # The caller locks, so any thread may use the connection.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    return db


def _open_checked(path: str) -> sqlite3.Connection:
    """The store's connection; a corrupt or newer store is moved aside first."""
    try:
        db = _connect(path)
        problem = _check(db)
    except sqlite3.DatabaseError as exc:
        problem = ("corrupt", f"not a readable database ({exc})")
        db = None
    if problem is not None:
        if db is not None:
            db.close()
        _move_aside(path, *problem)
        db = _connect(path)
    if not _has_schema(db):
        _create(db)
    _upgrade(db, path)
    return db


def _upgrade(db: sqlite3.Connection, path: str) -> None:
    """Bring a file of an older schema to this one, its rows kept (one transaction).

    Schema 1 computed the SQL readers' columns as generated columns of
    ``entities`` (and files made before clouds lack ``cloud``): they are
    dropped (virtual: nothing is rewritten), the table becomes
    ``entity_rows`` and the columns come back in the ``entities`` view.
    """
    (version,) = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
    if int(version) >= SCHEMA:
        return
    with db:
        db.execute("BEGIN")
        db.execute("DROP VIEW IF EXISTS live_entities")
        # table_xinfo's "hidden" is 2 or 3 for a generated column.
        computed = [row[1] for row in db.execute("PRAGMA table_xinfo(entities)") if row[6] > 1]
        for column in computed:
            db.execute(f"ALTER TABLE entities DROP COLUMN {column}")  # names from the schema
        db.execute("ALTER TABLE entities RENAME TO entity_rows")
        db.execute(_ENTITIES_VIEW)
        db.execute(_LIVE_VIEW)
        db.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (str(SCHEMA),))
    LOG.info("The state at %s was upgraded from schema %s to %d", path, version, SCHEMA)


def _has_schema(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
    return row.fetchone() is not None


def _check(db: sqlite3.Connection) -> tuple[str, str] | None:
    """None when the file is usable; else ``(suffix, reason)`` to move it aside."""
    (ok,) = db.execute("PRAGMA quick_check").fetchone()
    if ok != "ok":
        return "corrupt", f"corrupt ({ok})"
    if not _has_schema(db):
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        return None if tables == 0 else ("corrupt", "not a synchronizer state (unknown tables)")
    row = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
    if row is None:
        return "corrupt", "no schema version"
    version = int(row[0])
    if version > SCHEMA:
        reason = f"from a newer version (schema {version}; this one reads {SCHEMA})"
        return f"schema{version}", reason
    return None


def _move_aside(path: str, suffix: str, reason: str) -> None:
    aside = f"{path}.{suffix}-{time.strftime('%Y%m%dT%H%M%S')}"
    for ext in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path + ext, aside + ext)
    LOG.error(
        "The state at %s is %s: moved aside to %s; starting from an empty state",
        path,
        reason,
        aside,
    )


def _create(db: sqlite3.Connection) -> None:
    with db:
        db.execute("BEGIN")
        for ddl in _DDL:
            db.execute(ddl)
        db.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("schema", str(SCHEMA)), ("epoch", uuid.uuid4().hex[:16]), ("seq", "0")],
        )


def _meta(db: sqlite3.Connection) -> tuple[str, int]:
    meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
    return meta["epoch"], int(meta["seq"])


def _lock(path: str) -> Any:
    """Hold ``<path>.lock`` (flock) for the store's life; raise StateLocked if taken."""
    lockfile = open(path + ".lock", "a+")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            lockfile.close()
            raise
        lockfile.seek(0)
        pid = lockfile.read().strip() or "unknown"
        lockfile.close()
        raise StateLocked(
            f"another synchronizer (pid {pid}) holds the state at {path}; "
            "stop it, or give this one another state_path"
        ) from None
    lockfile.seek(0)
    lockfile.truncate()
    lockfile.write(f"{os.getpid()}\n")
    lockfile.flush()
    return lockfile
