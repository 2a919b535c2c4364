"""The ledger: what subscribers were last told about each entity.

The ledger maps ``(type, key)`` to the last change delivered for it and is
both the dispatcher's filter and the daemon's current view (``get_all``).
:meth:`Ledger.admit` applies the delivery rules of DESIGN.md:

* a change that repeats what was told (same fingerprint) is dropped, but
  its observation time still advances the entity's clock;
* a state older than the newest already seen for the key is dropped;
* a delete of something never told (or already deleted) is dropped; a
  delivered delete carries the last known state; a reported delete of a
  key never told still leaves a tombstone (below), since notifications
  are converted concurrently and a delete can overtake its own create;
* after a delete the service reported (a notification, a delta listing's
  deleted record), a *polled* create/update of the same key is a stale read
  (OpenStack never reuses ids) and is dropped until the tombstone expires;
  after a delete only *inferred* from the key's absence from a listing
  (``Change.inferred``), a later listing that lists the key again is
  evidence the delete was wrong: the entity comes back as a create, counted
  (:attr:`Ledger.revived`) and logged;
* the action is rewritten to what the subscribers know: ``create`` when
  they never saw the key (or saw it deleted), ``update`` otherwise.

Tombstones: a delete leaves its key's entry as a tombstone (the delete's
header: time and seq), which the stale-read rule reads.  A tombstone
expires ``tombstone_ttl`` seconds after the delete and goes, entry and all,
when :meth:`Ledger.prune` next runs (the dispatcher runs it on its
dispatch path).  At most ``tombstone_max`` are kept: a delete beyond that
forgets the oldest tombstone at once, so churn cannot grow the ledger.

Each entry is kept compact by :mod:`synchronizer.dispatch.codec` (a
header plus compressed content: about 75 bytes of content per Nova
instance), in an :class:`~synchronizer.dispatch.store.EntryStore` (the
heap, or the ``ledger_file``).  The rules read only the header; the content
is decoded for deletes (which carry the last state) and for the view.
Tombstones' times stay in memory (one per recent delete).

Threading: not thread-safe; the dispatcher calls it under its own lock.
"""

from __future__ import annotations

import collections
import logging
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Sequence

from synchronizer import timeutil
from synchronizer.dispatch.codec import Entry, EntryCodec, Head, gc_paused
from synchronizer.dispatch.store import EntryStore, EntryTable, FileStore, MemoryStore
from synchronizer.model import Action, Change, Entity, Ref

LOG = logging.getLogger(__name__)

LedgerKey = tuple[str, str]

TOMBSTONE_MAX = 100_000


class Ledger:
    """``(type, key)`` → last delivered change, plus tombstones of deletes.

    ``store`` keeps the entries (the heap by default; a
    :class:`~synchronizer.dispatch.store.FileStore` keeps the process's
    memory flat, for a few microseconds more per change and per entity of a
    view).  ``clock`` (seconds, monotonic) times the tombstones.

    Invariants: ``len(ledger)`` is the number of live entities; the store
    holds those plus ``tombstone_count()`` tombstones, never more than
    ``tombstone_max`` of them.
    """

    def __init__(
        self,
        tombstone_ttl: float = 3600.0,
        store: EntryStore | None = None,
        *,
        tombstone_max: int = TOMBSTONE_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store: EntryStore = store if store is not None else MemoryStore()
        self._entries: dict[str, EntryTable] = dict(self.store.tables())
        # Oldest delete first: expiry and the bound both take from the front.
        self._tombstones: collections.OrderedDict[LedgerKey, float] = collections.OrderedDict()
        # Tombstones of deletes inferred from absence: they block no later listing.
        self._inferred: set[LedgerKey] = set()
        self._revived: list[LedgerKey] = []  # since the last commit, for its log line
        self.revived = 0  # entities brought back after an inferred delete, since start
        self._count = len(self.store)
        self._codec = EntryCodec()
        # A store that keeps told changes readable (the durable one) takes them as
        # they are: its entries must decode in the next process, without our codec.
        self._keeps_changes = bool(getattr(self.store, "keeps_changes", False))
        # A store that reads entries from a file reads a batch's headers in one go.
        self._prefetch = getattr(self.store, "prefetch", None)
        self._clock = clock
        self.tombstone_ttl = tombstone_ttl
        self.tombstone_max = tombstone_max
        self._restore_tombstones()

    def _restore_tombstones(self) -> None:
        """A durable store's deletes guard against stale reads again, aged by their time.

        A delete no service reported (found by a resync, or from a listing's
        absence) was inferred: restored, it still lets a listing that lists
        the key again bring it back (a zone emptied of hosts and filled again).
        """
        tombstones = getattr(self.store, "tombstones", None)
        if tombstones is None:
            return
        now, wall = self._clock(), time.time()
        for type_, key, observed, inferred in tombstones():
            try:
                age = max(0.0, wall - timeutil.to_datetime(observed).timestamp())
            except ValueError:
                age = 0.0
            self._tombstones[(type_, key)] = now - age
            if inferred:
                self._inferred.add((type_, key))
        while len(self._tombstones) > self.tombstone_max:
            self._forget(next(iter(self._tombstones)))

    def _encode(self, told: Change, *, content: bool = True) -> Entry:
        if self._keeps_changes:
            return told
        return self._codec.encode(told, content=content)

    @property
    def _db(self) -> sqlite3.Connection | None:
        # tests/functional/test_library.py checks the ledger file is in use so.
        return self.store.db if isinstance(self.store, FileStore) else None

    def _table(self, type_: str) -> EntryTable:
        entries = self._entries.get(type_)
        if entries is None:
            entries = self._entries[type_] = self.store.table(type_)
        return entries

    def __len__(self) -> int:
        return self._count - len(self._tombstones)

    def tombstone_count(self) -> int:
        """Tombstones kept (deletes still guarding against stale reads)."""
        return len(self._tombstones)

    def get(self, type_: str, key: str) -> Change | None:
        """The last delivered change of an entity (a delete for tombstones)."""
        entry = self._entries.get(type_, {}).get(key)
        return None if entry is None else self._codec.decode(type_, key, entry)

    def prefetch(self, changes: Sequence[Change]) -> None:
        """Say which entries a batch will look up (a hint, for a store that reads a file)."""
        fetch = self._prefetch
        if fetch is None or not changes:
            return
        keys: dict[str, list[str]] = {}
        for change in changes:
            entity = change.entity
            keys.setdefault(entity.type, []).append(entity.key)
        fetch(keys)

    def admit(self, change: Change, seq: int = 0) -> Change | None:
        """Return the change to deliver (action rewritten, ``seq`` set), or None."""
        entity = change.entity
        entries = self._table(entity.type)
        entry = entries.get(entity.key)
        prev = None if entry is None else Head(entry)
        if prev is not None and entity.timestamp < prev.timestamp:
            return None
        if change.action is Action.DELETE:
            return self._admit_delete(entries, change, entry, prev, seq)
        return self._admit_upsert(entries, change, entry, prev, seq)

    def commit(self, told: Sequence[Change] = (), seq: int | None = None) -> None:
        """Make what was admitted so far durable, with its history (before anyone sees it)."""
        self.store.commit(told, seq)
        self._report_revived()

    def _report_revived(self) -> None:
        revived, self._revived = self._revived, []
        if not revived:
            return
        self.revived += len(revived)
        LOG.warning(
            "%d entities listed again after deletes inferred from their absence (those "
            "deletes were wrong: a listing lost records); sent as creates: %s",
            len(revived),
            ", ".join(f"{t} {k}" for t, k in revived[:5]) + (" ..." if len(revived) > 5 else ""),
        )

    def _admit_delete(
        self,
        entries: EntryTable,
        change: Change,
        entry: Entry | None,
        prev: Head | None,
        seq: int,
    ) -> Change | None:
        entity = change.entity
        if entry is None or prev is None:
            if not change.inferred:
                self._remember_unseen_delete(entries, change)
            return None
        if prev.action is Action.DELETE:
            if not change.inferred:  # the service confirms it: the tombstone now blocks
                self._inferred.discard((entity.type, entity.key))
            self._advance(entries, entity, entry, prev)
            return None
        if entity.state is None or change.final_state_unknown:
            # Carry the last known state, observed at the time of the delete.
            last = self._codec.decode(entity.type, entity.key, entry).entity
            entity = last.replace(timestamp=entity.timestamp, source=entity.source)
        told = Change(Action.DELETE, entity, 0, change.final_state_unknown, seq)
        entries[entity.key] = self._encode(told, content=False)
        self._bury((entity.type, entity.key), inferred=change.inferred)
        return told

    def _remember_unseen_delete(self, entries: EntryTable, change: Change) -> None:
        """Keep a tombstone for a reported delete of a key never told, telling nobody.

        Notifications are converted concurrently (executor threads, several
        workers), so an entity's delete can overtake its create: without the
        tombstone, the older create would come next and make a phantom that
        nothing removes for a type no collector lists.
        """
        entity = change.entity
        entries[entity.key] = self._encode(
            Change(Action.DELETE, entity, 0, change.final_state_unknown), content=False
        )
        self._count += 1
        self._bury((entity.type, entity.key))

    def _admit_upsert(
        self,
        entries: EntryTable,
        change: Change,
        entry: Entry | None,
        prev: Head | None,
        seq: int,
    ) -> Change | None:
        entity = change.entity
        if entry is not None and prev is not None and prev.action is not Action.DELETE:
            if prev.fingerprint == change.fingerprint:
                self._advance(entries, entity, entry, prev)
                return None
            action = Action.UPDATE
        else:
            k = (entity.type, entity.key)
            if prev is not None and self._is_stale_read(k, change):
                return None
            if entry is None:
                self._count += 1
            self._tombstones.pop(k, None)
            if k in self._inferred:
                self._inferred.discard(k)
                self._revived.append(k)
            action = Action.CREATE
        told = Change(action, entity, change.fingerprint, change.final_state_unknown, seq)
        entries[entity.key] = self._encode(told)
        return told

    def _is_stale_read(self, k: LedgerKey, change: Change) -> bool:
        deleted_at = self._tombstones.get(k)
        if deleted_at is None or k in self._inferred:
            return False
        if self._clock() - deleted_at > self.tombstone_ttl:
            return False
        source = change.entity.source
        return source is None or source.kind == "poll"

    def _advance(self, entries: EntryTable, seen: Entity, entry: Entry, prev: Head) -> None:
        """Move the entry's observation time to ``seen``'s, if later."""
        if seen.timestamp > prev.timestamp:
            retimed = self._codec.retime(seen.type, seen.key, entry, prev, seen.timestamp)
            entries[seen.key] = retimed

    # -- tombstones ---------------------------------------------------------

    def _bury(self, k: LedgerKey, *, inferred: bool = False) -> None:
        stones = self._tombstones
        stones[k] = self._clock()
        stones.move_to_end(k)
        if inferred:
            self._inferred.add(k)
        while len(stones) > self.tombstone_max:
            self._forget(next(iter(stones)))

    def _forget(self, k: LedgerKey) -> None:
        """Drop a tombstone and its entry: the key is as if never told."""
        del self._tombstones[k]
        self._inferred.discard(k)
        del self._entries[k[0]][k[1]]
        self._count -= 1

    def prune(self, limit: int | None = None) -> int:
        """Forget tombstones older than the TTL, oldest first; return how many went.

        With ``limit``, at most that many go (the rest on a later call), so
        one call never holds the dispatcher long after a mass delete.  Only
        the expired ones are visited: a call with none expired costs one
        look at the oldest.
        """
        cutoff = self._clock() - self.tombstone_ttl
        stones = self._tombstones
        pruned = 0
        while stones and (limit is None or pruned < limit):
            k, deleted_at = next(iter(stones.items()))
            if deleted_at >= cutoff:
                break
            self._forget(k)
            pruned += 1
        return pruned

    # -- the view -------------------------------------------------------------

    def current(
        self, types: Collection[str] | None = None, *, action: Action | None = None
    ) -> list[Change]:
        """Every live entity's last change, decoded, optionally of some types only.

        With ``action``, the changes carry that action instead (``snapshot``
        for a new subscriber), built so rather than copied afterwards.

        A few microseconds an entity.  Decoding allocates several objects per
        entity and makes no reference cycles, so the cyclic garbage collector
        is paused meanwhile: over a view of 100,000 entities it would
        otherwise run several full collections, doubling the time a new
        subscriber or ``get_all`` waits (refcounting still frees as usual).
        """
        with gc_paused():
            return list(self._live(types, action))

    def _live(self, types: Collection[str] | None, action: Action | None) -> Iterator[Change]:
        refs: dict[tuple[str, str], Ref] = {}
        for type_, entries in self._entries.items():
            if types is None or type_ in types:
                yield from self._codec.live(type_, entries.items(), refs, action)

    def entities(self, types: Collection[str] | None = None) -> list[Entity]:
        return [c.entity for c in self.current(types)]
