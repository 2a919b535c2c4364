"""The in-memory cloud: records of every kind, their order and their times.

The store knows nothing about HTTP or about any one API: each entity kind
(servers, volumes, ...) is a :class:`KindSpec` supplied by the module of the
service that owns it, which builds a record's canonical document from
friendly fields and applies updates to it. The store keeps the records in
creation order, stamps every change with a strictly increasing instant and,
for kinds that keep tombstones (Nova servers), keeps deleted records with
``deleted`` set so that ``changes-since`` can report them::

    state = CloudState(kinds)
    rec = state.create("servers", {"name": "vm-1", "host": "compute-0001"})
    state.update("servers", rec.key, {"status": "SHUTOFF"})
    state.delete("servers", rec.key)      # a tombstone remains
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from synchronizer_fakecloud.clock import Clock

Doc = dict[str, Any]


@dataclass(slots=True, eq=False)
class Record:
    """One entity: its canonical API document and bookkeeping.

    Invariants: ``doc`` is never mutated in place once stored (updates
    replace it), so nested values may be shared between records; ``updated``
    only grows; ``cache`` holds encoded renderings of the current ``doc`` and
    is cleared whenever ``doc`` changes. ``deleted`` is set on tombstones.
    Threading: read and write only while holding :attr:`CloudState.lock`.
    """

    kind: str
    key: str
    doc: Doc
    meta: dict[str, Any]
    created: float
    updated: float
    deleted: float | None = None
    cache: dict[Hashable, bytes] = field(default_factory=dict)


class KindSpec(Protocol):
    """How one entity kind is built, changed and deleted.

    ``build`` returns the key, canonical document and private metadata of a
    new record; ``apply`` returns the document and metadata after an
    update; ``bury`` returns the tombstone document (only called when
    ``tombstones`` is true); ``cascade`` is called after a delete to change
    dependent records. All are called with the state lock held.
    """

    name: str
    tombstones: bool

    def build(self, state: CloudState, fields: Doc, now: float) -> tuple[str, Doc, dict]: ...

    def apply(
        self, state: CloudState, rec: Record, fields: Doc, now: float
    ) -> tuple[Doc, dict]: ...

    def bury(self, state: CloudState, rec: Record, now: float) -> Doc: ...

    def cascade(self, state: CloudState, rec: Record) -> None: ...


class Table:
    """The records of one kind in creation order.

    Removal leaves a hole in the order (compacted once holes outnumber
    records), so a marker's position is found in O(1) and scanning a page
    costs the page, not the table. Threading: guarded by the state lock.
    """

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._order: list[str | None] = []
        self._pos: dict[str, int] = {}
        self._holes = 0

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, key: object) -> bool:
        return key in self._records

    def get(self, key: str) -> Record | None:
        """Return the record with this key, or None."""
        return self._records.get(key)

    def add(self, rec: Record) -> None:
        """Append a new record; raise ValueError if the key exists."""
        if rec.key in self._records:
            raise ValueError(f"{rec.kind} {rec.key} already exists")
        self._records[rec.key] = rec
        self._pos[rec.key] = len(self._order)
        self._order.append(rec.key)

    def remove(self, key: str) -> Record:
        """Remove and return a record; raise KeyError if absent."""
        rec = self._records.pop(key)
        self._order[self._pos.pop(key)] = None
        self._holes += 1
        if self._holes > len(self._records):
            self._compact()
        return rec

    def records(self) -> Iterator[Record]:
        """Iterate over all records (tombstones included), oldest first."""
        return iter(list(self._records.values()))

    def scan(self, after: str | None = None, newest_first: bool = False) -> Iterator[Record]:
        """Iterate from just past the record ``after`` (or from the start).

        Raises KeyError if ``after`` is not a key of this table.
        """
        order = self._order
        if newest_first:
            start = len(order) - 1 if after is None else self._pos[after] - 1
            indexes: Iterable[int] = range(start, -1, -1)
        else:
            start = 0 if after is None else self._pos[after] + 1
            indexes = range(start, len(order))
        records = self._records
        for index in indexes:
            key = order[index]
            if key is not None:
                yield records[key]

    def _compact(self) -> None:
        self._order = [key for key in self._order if key is not None]
        self._pos = {key: index for index, key in enumerate(self._order)}
        self._holes = 0


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC: bulk creation allocates only acyclic objects,
    and generational passes over a growing heap would dominate its cost."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class CloudState:
    """A thread-safe store of every entity of the fake cloud.

    Contract: every create, update and delete takes one instant from
    :attr:`clock` and stores it as the record's ``updated``; an update of a
    tombstone or of an unknown key raises KeyError; deleting a kind with
    tombstones keeps the record with ``deleted`` set.
    Threading: every method takes :attr:`lock` (re-entrant); readers that
    walk tables must hold it themselves for the duration of the walk.
    """

    def __init__(self, kinds: Mapping[str, KindSpec], clock: Clock | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        self._kinds = dict(kinds)
        self._tables = {name: Table() for name in self._kinds}
        # Shared facts kinds read while building records (default project,
        # user, counters, the generation of host states).
        self.context: dict[str, Any] = {}

    @property
    def kinds(self) -> list[str]:
        """Names of the entity kinds this store holds."""
        return list(self._kinds)

    def table(self, kind: str) -> Table:
        """Return the table of a kind; raise KeyError for an unknown kind."""
        return self._tables[kind]

    def get(self, kind: str, key: str) -> Record | None:
        """Return a record (tombstones included) or None."""
        with self.lock:
            return self._tables[kind].get(key)

    def live(self, kind: str, key: str) -> Record | None:
        """Return a record unless it is absent or a tombstone."""
        rec = self.get(kind, key)
        return None if rec is None or rec.deleted is not None else rec

    def create(self, kind: str, fields: Doc) -> Record:
        """Build and store a new record from friendly fields."""
        with self.lock:
            now = self.clock.tick()
            key, doc, meta = self._kinds[kind].build(self, dict(fields), now)
            rec = Record(kind, key, doc, meta, now, now)
            self._tables[kind].add(rec)
            return rec

    def create_many(self, kind: str, many: Iterable[Doc]) -> int:
        """Create records in bulk under one lock and one instant."""
        spec, table = self._kinds[kind], self._tables[kind]
        count = 0
        with self.lock, _no_gc():
            now = self.clock.tick()
            for fields in many:
                key, doc, meta = spec.build(self, fields, now)
                table.add(Record(kind, key, doc, meta, now, now))
                count += 1
        return count

    def update(self, kind: str, key: str, fields: Doc) -> Record:
        """Apply friendly fields to a live record and stamp it."""
        with self.lock:
            rec = self.live(kind, key)
            if rec is None:
                raise KeyError(f"{kind} {key} not found")
            now = self.clock.tick()
            rec.doc, rec.meta = self._kinds[kind].apply(self, rec, dict(fields), now)
            rec.updated = now
            rec.cache.clear()
            return rec

    def delete(self, kind: str, key: str) -> Record:
        """Delete a live record: bury it or remove it, then cascade."""
        with self.lock:
            rec = self.live(kind, key)
            if rec is None:
                raise KeyError(f"{kind} {key} not found")
            spec = self._kinds[kind]
            now = self.clock.tick()
            if spec.tombstones:
                rec.doc = spec.bury(self, rec, now)
                rec.deleted = rec.updated = now
                rec.cache.clear()
            else:
                self._tables[kind].remove(key)
            spec.cascade(self, rec)
            return rec

    def purge(self, kind: str) -> int:
        """Forget the tombstones of a kind (as ``nova-manage db archive``)."""
        with self.lock:
            table = self._tables[kind]
            dead = [rec.key for rec in table.records() if rec.deleted is not None]
            for key in dead:
                table.remove(key)
            return len(dead)

    def reset(self) -> None:
        """Forget every record of every kind."""
        with self.lock:
            self._tables = {name: Table() for name in self._kinds}

    def invalidate_cache(self) -> None:
        """Drop every cached rendering (e.g. after the base URL changed)."""
        with self.lock:
            for table in self._tables.values():
                for rec in table.records():
                    rec.cache.clear()

    def counts(self) -> dict[str, int]:
        """Number of live records per kind."""
        with self.lock:
            return {
                kind: sum(1 for rec in table.records() if rec.deleted is None)
                for kind, table in self._tables.items()
            }
