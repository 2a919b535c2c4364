"""The fleet's shared state store: one partition's stream in a SQL database, fenced.

Over 400 lines on purpose: one store implementation, its schema and its
fencing in one place, as durable.py is for SQLite.

:class:`SQLStore` implements :class:`~synchronizer.dispatch.store.StateStore`
for one *partition* (see :mod:`synchronizer.fleet.partitions`) in the
database the control plane already has (``[database] connection``, an
oslo.db/SQLAlchemy URL: ``mysql+pymysql://...`` as OpenStack deploys
MariaDB, or ``postgresql+psycopg2://...``).  Every member of a fleet opens
the same database; each partition's rows are its own stream: its epoch,
its last ``seq``, its view, history and sink positions.

Fencing: a member opens a partition's store with :meth:`SQLStore.claim`,
which raises the partition's *term* by one in the database (and records
the member as owner).  Every later write of that store (``commit``,
``save_position``) runs in one transaction that first locks the
partition's row (``SELECT ... FOR UPDATE``) and checks the term is still
its own: when another member claimed the partition since, the whole
transaction is rolled back and :class:`~synchronizer.errors.Fenced` is
raised, so nothing of a refused batch is visible to any reader.  The row
lock orders a claim against an in-flight commit: a commit either
finished before the new term (and the new owner reads it), or is refused.

The lease bounds those transactions (:func:`create_engine`'s ``lease``:
the fleet's ``heartbeat_timeout``, set on each of the engine's connections
when it is made, so a transaction pays nothing for it). An owner frozen
inside one (paused, its VM stopped, its host cut off with the connection
half open) still holds the row, and to the database it is only a client
idle in its transaction: the database ends such a transaction once it has
been idle for the lease (PostgreSQL's
``idle_in_transaction_session_timeout``, MariaDB's
``idle_transaction_timeout``), and a claim or commit waits for the row at
most a third of the lease (``lock_timeout``,
``innodb_lock_wait_timeout``), so that the ownership loop that claims goes
on heart-beating and tries again.  A transaction therefore does no work of
its own between its statements: the rows are built before it begins.
MySQL has no idle transaction timeout: there a frozen owner holds the row
until its connection ends (``wait_timeout``), and the claim is retried
each period.

The owner is the only writer of its partition, so its entries are read
once at open and kept in memory (``keeps_changes``: the entries are the
told changes); ``commit`` writes what changed since the last commit.
After any failed commit the store must be dropped and the partition
reopened from the database (its in-memory entries may hold the refused
batch): :class:`~synchronizer.fleet.member.Member` does so.

Tables (created when absent; schema :data:`SCHEMA`): ``sync_partitions``
(name, term, owner, epoch, seq, claimed), ``sync_entities`` (partition,
type, key, seq, action, fingerprint, observed, doc, cloud), ``sync_history``
(partition, seq, type, committed, doc), ``sync_positions`` (partition,
name, seq).  A CMDB can read the view with SQL::

    SELECT type, key, doc FROM sync_entities WHERE action != 'delete'

Threading: the entry tables and ``commit`` are the caller's to lock (the
dispatcher's lock); the other reads and ``save_position`` are thread-safe
(each takes a pooled connection).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Collection, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from oslo_db import exception as db_exc
from sqlalchemy.dialects import mysql

from synchronizer.dispatch.rows import change_of, doc_of, signed
from synchronizer.errors import Fenced
from synchronizer.model import Action, Change

LOG = logging.getLogger(__name__)

__all__ = ["SCHEMA", "SQLStore", "create_engine", "metadata", "owners", "read_views"]

SCHEMA = 1

metadata = sa.MetaData()
# Unix times: DOUBLE; sa.Float is MySQL's 4-byte FLOAT, which rounds them to minutes.
_TIME = sa.Double
_KEY = sa.String(255)
_DOC = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")  # a TEXT is 64 KiB there

partitions = sa.Table(
    "sync_partitions",
    metadata,
    sa.Column("name", _KEY, primary_key=True),
    sa.Column("term", sa.BigInteger, nullable=False),
    sa.Column("owner", sa.String(255)),
    sa.Column("epoch", sa.String(32), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("claimed", _TIME),
)
entities = sa.Table(
    "sync_entities",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("partition", _KEY, nullable=False),
    sa.Column("type", sa.String(128), nullable=False),
    sa.Column("key", _KEY, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("fingerprint", sa.BigInteger, nullable=False),
    sa.Column("observed", sa.String(40), nullable=False),
    sa.Column("doc", _DOC),
    # The entity's cloud (null for one of no cloud), for SQL readers to filter on.
    sa.Column("cloud", sa.String(64), nullable=True),
    sa.UniqueConstraint("partition", "type", "key", name="uniq_sync_entities0pkey"),
)
history = sa.Table(
    "sync_history",
    metadata,
    sa.Column("partition", _KEY, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(128), nullable=False),
    sa.Column("committed", _TIME, nullable=False),
    sa.Column("doc", _DOC),
)
positions = sa.Table(
    "sync_positions",
    metadata,
    sa.Column("partition", _KEY, primary_key=True),
    sa.Column("name", _KEY, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("updated", _TIME),
)


#: What a database that fails raises through an oslo.db engine: SQLAlchemy's
#: errors, and oslo.db's translations of some of them (a lost connection is
#: ``DBConnectionError``, a deadlock ``DBDeadlock``), which are not SQLAlchemy's.
DATABASE_ERRORS: tuple[type[Exception], ...] = (sa.exc.SQLAlchemyError, db_exc.DBError)
CREATE_ATTEMPTS = 5  # tries at creating the tables (members starting together race)
_VALUES = ("seq", "action", "fingerprint", "observed", "doc", "cloud")


def create_engine(
    connection: str,
    *,
    create_tables: bool = True,
    lease: float | None = None,
    **options: Any,
) -> sa.engine.Engine:
    """An engine the oslo.db way (``[database]`` options), the tables created if asked.

    ``lease`` (seconds; the fleet's ``heartbeat_timeout``) bounds every
    transaction of the engine's connections (see the module docstring).
    """
    from oslo_db.sqlalchemy import engines

    if options.get("max_retries") == 0:
        # oslo.db tests the connection at creation (retrying); a member
        # connects when it first claims a partition instead.
        options["_test_connection"] = lambda *a, **k: None
    engine = engines.create_engine(connection, **options)
    if lease is not None:
        _bound_connections(engine, lease)
    if create_tables:
        create_tables_of(engine)
    return engine


def _bound_connections(engine: sa.engine.Engine, lease: float) -> None:
    """Set the lease's bounds on each connection once, as it is made, and commit them.

    Session settings, set outside any transaction: a transaction that
    rolls back (a fenced commit) does not undo them, as it would undo a
    ``SET`` made inside it on PostgreSQL, and no transaction pays a round
    trip for them.
    """
    wait = max(1.0, lease / 3)
    if engine.dialect.name == "postgresql":
        required = [
            f"SET lock_timeout = '{int(wait * 1000)}ms'",
            f"SET idle_in_transaction_session_timeout = '{int(lease * 1000)}ms'",
        ]
        optional = []
    elif engine.dialect.name == "mysql":
        required = [f"SET SESSION innodb_lock_wait_timeout = {math.ceil(wait)}"]
        optional = [f"SET SESSION idle_transaction_timeout = {math.ceil(lease)}"]  # MariaDB
    else:
        return
    error = engine.dialect.dbapi.Error

    @sa.event.listens_for(engine, "connect")
    def _bound(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for statement in required:
                cursor.execute(statement)
            for statement in optional:
                try:
                    cursor.execute(statement)
                except error:
                    LOG.debug("No idle_transaction_timeout (MySQL, not MariaDB)")
        finally:
            cursor.close()
        dbapi_connection.commit()

    # oslo.db tries a connection as it makes the engine, before this listener:
    # that one is dropped from the pool rather than handed out unbounded.
    engine.dispose()


def create_tables_of(engine: sa.engine.Engine) -> None:
    """Create the tables that are missing, and bring older ones up to date.

    Since the first release: the ``cloud`` column; on MySQL, times stored
    as DOUBLE where they were FLOAT.

    Members starting together on a new database all find the tables
    missing, and all but one fail to create them ("already exists", or on
    PostgreSQL a duplicate type).  What failed is done again, a few times,
    after a short wait: the others' tables (and columns) are there by then
    and are left as they are.
    """
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        try:
            _create_tables(engine)
            return
        except DATABASE_ERRORS as exc:
            if attempt == CREATE_ATTEMPTS:
                raise
            LOG.debug("Creating the tables failed (%s); again, as another member may be", exc)
            time.sleep(0.1 * attempt)


def _create_tables(engine: sa.engine.Engine) -> None:
    metadata.create_all(engine, checkfirst=True)
    inspector = sa.inspect(engine)
    columns = {c["name"] for c in inspector.get_columns(entities.name)}
    if "cloud" not in columns:
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {entities.name} ADD COLUMN cloud VARCHAR(64)"))
    if engine.dialect.name == "mysql":
        _double_times(engine, inspector)


def _double_times(engine: sa.engine.Engine, inspector: Any) -> None:
    """MySQL: the time columns that an earlier schema made FLOAT, made DOUBLE."""
    for table in (partitions, history, positions):
        for column in inspector.get_columns(table.name):
            if type(column["type"]).__name__ != "FLOAT":
                continue
            null = "NULL" if column["nullable"] else "NOT NULL"
            with engine.begin() as conn:
                conn.execute(
                    sa.text(f"ALTER TABLE {table.name} MODIFY {column['name']} DOUBLE {null}")
                )
            LOG.info("Table %s: column %s is DOUBLE now", table.name, column["name"])


def owners(engine: sa.engine.Engine) -> dict[str, tuple[str | None, int]]:
    """``partition → (owner, term)`` as the database holds them (for status and tests)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(partitions.c.name, partitions.c.owner, partitions.c.term))
        return {name: (owner, int(term)) for name, owner, term in rows}


def read_views(
    engine: sa.engine.Engine,
    types: Collection[str] | None = None,
    partition: str | None = None,
) -> tuple[dict[str, tuple[str, int]], list[str]]:
    """Every partition's live entities (their change JSON), read by any member.

    Returns ``partition → (epoch, seq)`` and the docs (of ``partition`` only,
    when given: two clouds' partitions hold the same types).  One
    repeatable-read transaction: each partition's docs are exactly its view
    at its ``seq`` (every change up to it, none after), whichever owner is
    writing.
    """
    rr = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with rr as conn, conn.begin():
        rows = conn.execute(sa.select(partitions.c.name, partitions.c.epoch, partitions.c.seq))
        streams = {name: (epoch, int(seq)) for name, epoch, seq in rows}
        query = sa.select(entities.c.doc).where(entities.c.action != "delete")
        if types is not None:
            query = query.where(entities.c.type.in_(list(types)))
        if partition is not None:
            query = query.where(entities.c.partition == partition)
        docs = [doc for (doc,) in conn.execute(query.order_by(entities.c.id))]
    return streams, docs


_Rows = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]


class _Table(dict):  # type: ignore[type-arg]
    """One type's entries in memory, noting which keys changed since the last commit."""

    def __init__(self, dirty: set[tuple[str, str]], type_: str) -> None:
        super().__init__()
        self._dirty, self._type = dirty, type_

    def __setitem__(self, key: str, entry: Any) -> None:
        super().__setitem__(key, entry)
        self._dirty.add((self._type, key))

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._dirty.add((self._type, key))


class SQLStore:
    """One partition's state in the shared database, written only by its term's owner.

    ``owner`` names the member (for the partitions table); ``claim()``
    must be called before the first ``commit``.  See the module docstring.
    """

    durable = True
    keeps_changes = True

    def __init__(
        self,
        engine: sa.engine.Engine,
        partition: str,
        owner: str,
        *,
        history_max_changes: int = 500_000,
        history_max_age: float = 3600.0,
    ) -> None:
        self.engine = engine
        self.partition = partition
        self.owner = owner
        self.history_max_changes = history_max_changes
        self.history_max_age = history_max_age
        self.term = 0
        self.epoch = ""
        self._seq = 0
        self._dirty: set[tuple[str, str]] = set()
        self._tables: dict[str, _Table] = {}
        self._stored: set[tuple[str, str]] = set()  # keys with a row in the database
        self._trimmed_at = time.time()
        self._closed = False

    # -- ownership -----------------------------------------------------------

    def claim(self) -> int:
        """Take the partition: its term + 1, then read its state; return the new term.

        From here on, any write by a store of an older term is refused.
        """
        with self.engine.begin() as conn:
            row = self._lock_row(conn)
            if row is None:
                self.epoch, self._seq, self.term = uuid.uuid4().hex[:16], 0, 1
                conn.execute(
                    partitions.insert().values(
                        name=self.partition,
                        term=1,
                        owner=self.owner,
                        epoch=self.epoch,
                        seq=0,
                        claimed=time.time(),
                    )
                )
            else:
                self.term = int(row.term) + 1
                self.epoch, self._seq = row.epoch, int(row.seq)
                conn.execute(
                    partitions.update()
                    .where(partitions.c.name == self.partition)
                    .values(term=self.term, owner=self.owner, claimed=time.time())
                )
        self._load()
        LOG.info("Partition %s: claimed term %d at seq %d", self.partition, self.term, self._seq)
        return self.term

    def _lock_row(self, conn: sa.engine.Connection) -> Any:
        query = sa.select(partitions).where(partitions.c.name == self.partition).with_for_update()
        return conn.execute(query).first()

    def _fence(self, conn: sa.engine.Connection) -> int:
        """Lock the partition's row and check the term; raise Fenced if it moved on."""
        row = self._lock_row(conn)
        if row is None or int(row.term) != self.term:
            now = None if row is None else (row.owner, int(row.term))
            raise Fenced(
                f"partition {self.partition}: term {self.term} is over (now {now}); "
                "this member's writes are refused"
            )
        return int(row.seq)

    def _load(self) -> None:
        self._tables.clear()
        self._dirty.clear()
        self._stored.clear()
        query = (
            sa.select(entities.c.type, entities.c.key, entities.c.doc, entities.c.fingerprint)
            .where(entities.c.partition == self.partition)
            .order_by(entities.c.id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()  # decoded after: no transaction left idle
        for type_, key, doc, fp in rows:
            dict.__setitem__(self.table(type_), key, change_of(doc, fp))
            self._stored.add((type_, key))

    # -- EntryStore ------------------------------------------------------------

    def table(self, type_: str) -> _Table:
        table = self._tables.get(type_)
        if table is None:
            table = self._tables[type_] = _Table(self._dirty, type_)
        return table

    def tables(self) -> list[tuple[str, Any]]:
        return list(self._tables.items())

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables.values())

    def commit(self, told: Sequence[Change] = (), seq: int | None = None) -> None:
        """One fenced transaction: the entries changed, ``told`` into the history, ``seq``."""
        if self._closed:
            raise Fenced(f"partition {self.partition}: its store was closed (term {self.term})")
        if not self._dirty and not told and (seq is None or seq <= self._seq):
            return
        now = time.time()
        # Every row built before the transaction (see the module docstring).
        docs: dict[int, tuple[Change, str]] = {}  # id → (entry, its JSON): encoded once
        rows = self._entry_rows(docs)
        told_rows = [
            {
                "partition": self.partition,
                "seq": c.seq,
                "type": c.entity.type,
                "committed": now,
                "doc": doc_of(c, docs),
            }
            for c in told
        ]
        with self.engine.begin() as conn:
            self._fence(conn)
            self._write_entries(conn, rows)
            if told_rows:
                conn.execute(history.insert(), told_rows)
            if seq is not None and seq > self._seq:
                conn.execute(
                    partitions.update().where(partitions.c.name == self.partition).values(seq=seq)
                )
        self._mark_stored()
        if seq is not None and seq > self._seq:
            self._seq = seq
        if now - self._trimmed_at >= 30.0:
            self.trim()

    def _entry_rows(self, docs: dict[int, tuple[Change, str]]) -> _Rows:
        """The rows of the entries changed since the last commit: updates, inserts, deletes.

        Each entry's JSON is noted in ``docs``: the history takes the same text
        for a told change rather than encoding it again.
        """
        updates: list[dict[str, Any]] = []
        inserts: list[dict[str, Any]] = []
        gone: list[dict[str, Any]] = []
        for t, k in self._dirty:
            change = self._tables.get(t, {}).get(k)
            if change is None:
                if (t, k) in self._stored:
                    gone.append({"b_type": t, "b_key": k})
            elif (t, k) in self._stored:
                updates.append(self._row(t, k, change, docs, prefix="b_"))
            else:
                inserts.append(self._row(t, k, change, docs))
        return updates, inserts, gone

    def _write_entries(self, conn: sa.engine.Connection, rows: _Rows) -> None:
        """Write the rows of :meth:`_entry_rows`."""
        updates, inserts, gone = rows
        this = sa.and_(
            entities.c.partition == self.partition,
            entities.c.type == sa.bindparam("b_type"),
            entities.c.key == sa.bindparam("b_key"),
        )
        if updates:
            values = {c: sa.bindparam(f"b_{c}") for c in _VALUES}
            conn.execute(entities.update().where(this).values(values), updates)
        if inserts:
            conn.execute(entities.insert(), inserts)
        if gone:
            conn.execute(entities.delete().where(this), gone)

    def _row(
        self,
        type_: str,
        key: str,
        change: Change,
        docs: dict[int, tuple[Change, str]],
        prefix: str = "",
    ) -> dict[str, Any]:
        doc = change.to_json().decode()
        docs[id(change)] = (change, doc)
        row = {
            "type": type_,
            "key": key,
            "seq": change.seq,
            "action": str(change.action),
            "fingerprint": signed(change.fingerprint),
            "observed": change.entity.timestamp,
            "doc": doc,
            "cloud": change.entity.cloud,
        }
        if prefix:
            return {prefix + k: v for k, v in row.items()}
        return dict(row, partition=self.partition)

    def _mark_stored(self) -> None:
        for t, k in self._dirty:
            if k in self._tables.get(t, {}):
                self._stored.add((t, k))
            else:
                self._stored.discard((t, k))
        self._dirty.clear()

    def close(self) -> None:
        """Refuse any later commit; nothing to release but memory (the engine is the member's)."""
        self._closed = True
        self._tables.clear()
        self._dirty.clear()

    # -- StateStore --------------------------------------------------------------

    def last_seq(self) -> int:
        return self._seq

    def tombstones(self) -> list[tuple[str, str, str, bool]]:
        found = [
            (c.seq, t, k, c.entity.timestamp, c.final_state_unknown or c.entity.source is None)
            for t, table in self._tables.items()
            for k, c in table.items()
            if c.action is Action.DELETE
        ]
        return [(t, k, o, u) for _, t, k, o, u in sorted(found)]

    def history(self, after: int, limit: int = 1000) -> list[Change] | None:
        with self.engine.connect() as conn:
            if after < self._floor(conn):
                return None
            rows = conn.execute(
                sa.select(history.c.doc)
                .where(history.c.partition == self.partition, history.c.seq > after)
                .order_by(history.c.seq)
                .limit(limit)
            )
            return [Change.from_dict(orjson.loads(doc)) for (doc,) in rows]

    def history_floor(self) -> int:
        with self.engine.connect() as conn:
            return self._floor(conn)

    def _floor(self, conn: sa.engine.Connection) -> int:
        first = conn.execute(
            sa.select(sa.func.min(history.c.seq)).where(history.c.partition == self.partition)
        ).scalar()
        if first is not None:
            return int(first) - 1
        seq = conn.execute(
            sa.select(partitions.c.seq).where(partitions.c.name == self.partition)
        ).scalar()
        return int(seq or 0)

    def position(self, name: str) -> int | None:
        with self.engine.connect() as conn:
            seq = conn.execute(
                sa.select(positions.c.seq).where(
                    positions.c.partition == self.partition, positions.c.name == name
                )
            ).scalar()
        return None if seq is None else int(seq)

    def save_position(self, name: str, seq: int) -> None:
        """Record how far the sink ``name`` got: fenced, as every write."""
        with self.engine.begin() as conn:
            self._fence(conn)
            where = sa.and_(positions.c.partition == self.partition, positions.c.name == name)
            done = conn.execute(
                positions.update().where(where).values(seq=seq, updated=time.time())
            )
            if done.rowcount == 0:
                conn.execute(
                    positions.insert().values(
                        partition=self.partition, name=name, seq=seq, updated=time.time()
                    )
                )

    def view_docs(self, types: Collection[str] | None) -> tuple[int, list[str]]:
        """The live entities' JSON and the seq they cover, from the database."""
        with self.engine.connect() as conn:
            seq = conn.execute(
                sa.select(partitions.c.seq).where(partitions.c.name == self.partition)
            ).scalar()
            query = sa.select(entities.c.doc).where(
                entities.c.partition == self.partition, entities.c.action != "delete"
            )
            if types is not None:
                query = query.where(entities.c.type.in_(list(types)))
            docs = [doc for (doc,) in conn.execute(query.order_by(entities.c.id))]
        return int(seq or 0), docs

    def trim(self) -> int:
        """Drop history beyond the bounds, never past a saved sink position."""
        self._trimmed_at = time.time()
        with self.engine.begin() as conn:
            cut = self._seq - self.history_max_changes
            # The first change young enough to keep, in key order: the
            # primary key's walk reads only the aged rows (see durable.py).
            young = conn.execute(
                sa.select(history.c.seq)
                .where(
                    history.c.partition == self.partition,
                    history.c.committed >= time.time() - self.history_max_age,
                )
                .order_by(history.c.seq)
                .limit(1)
            ).scalar()
            cut = max(cut, int(young) - 1 if young is not None else self._seq)
            pinned = conn.execute(
                sa.select(sa.func.min(positions.c.seq)).where(
                    positions.c.partition == self.partition
                )
            ).scalar()
            if pinned is not None:
                cut = min(cut, int(pinned))
            if cut <= 0:
                return 0
            return conn.execute(
                history.delete().where(history.c.partition == self.partition, history.c.seq <= cut)
            ).rowcount
