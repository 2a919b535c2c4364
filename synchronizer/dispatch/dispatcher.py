"""The dispatcher: one ledger, many subscribers, nobody blocks anybody.

Every change from every worker passes :meth:`Dispatcher.dispatch`, which
applies the ledger's rules (drop repeats and stale states, rewrite the
action, stamp a daemon-wide sequence number) and offers what is left to
each subscriber whose types match.  Offering only queues: callbacks run on
each subscriber's own thread.

Sequence numbers: each *told* change gets the next one, so the stream's
seqs are consecutive (a consumer that sees a gap knows it lost something),
and the counter starts after the store's last committed one, so a seq
never goes back across restarts (with the durable store) and is never
reused.  A batch is committed to the store with its seqs and history
(:meth:`~synchronizer.dispatch.store.EntryStore.commit`) before any
subscriber or sink sees it; then :attr:`Dispatcher.committed` wakes the
sinks' feeds (:mod:`synchronizer.dispatch.feed`).

New subscribers are added under the same lock as dispatching, after their
queue was filled with the current entities (``snapshot`` items) and the
``synced`` marker: every change is either in that snapshot or delivered
after it, never both, never neither.

Resyncs (a worker's first complete full listing, see
:mod:`synchronizer.workers.collector`) are tracked here and decided by
:class:`synchronizer.deletes.Resync`: entities of the worker's plugin that
the resync did not list and that were last seen before it began are
deleted with their last known state, marked ``final_state_unknown``.

Tombstones are pruned on the dispatch path, after each batch: tombstones
are only made there, so that bounds them without a thread of its own, a
lifecycle or a second holder of the lock, and a call with nothing expired
costs one look at the oldest.  While no change arrives nothing is pruned,
and nothing needs to be: the stale-read rule compares the tombstone's age
itself, and the count is bounded by ``tombstone_max`` at every delete.

Threading: all public methods are thread-safe.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any

from synchronizer import clouds, timeutil
from synchronizer.deletes import Resync
from synchronizer.dispatch.codec import gc_paused
from synchronizer.dispatch.ledger import TOMBSTONE_MAX, Ledger
from synchronizer.dispatch.store import StateStore, open_state
from synchronizer.dispatch.subscriber import Subscription
from synchronizer.model import Action, Change, Entity, Synced

if TYPE_CHECKING:
    from oslo_config import cfg

LOG = logging.getLogger(__name__)

# Most tombstones one batch prunes: a mass delete expiring at once is
# forgotten over several batches rather than in one long hold of the lock.
PRUNE_STEP = 10_000


class Dispatcher:
    """Filters changes through the ledger and fans them out to subscribers.

    ``store`` keeps the ledger's entries and the stream's state (the heap
    by default); ``clock`` (monotonic seconds) times its tombstones.
    """

    def __init__(
        self,
        tombstone_ttl: float = 3600.0,
        store: StateStore | None = None,
        *,
        tombstone_max: int = TOMBSTONE_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self.ledger = Ledger(tombstone_ttl, store, tombstone_max=tombstone_max, clock=clock)
        self.store: StateStore = self.ledger.store  # type: ignore[assignment]
        self._subscribers: list[Subscription] = []
        self._next = self.store.last_seq() + 1
        # Notified (under its own lock) after each commit: the sinks' feeds wait on it.
        self.committed = threading.Condition()
        self._resyncs: dict[str, Resync] = {}
        self.counts: collections.Counter[str] = collections.Counter()

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> Dispatcher:
        """The dispatcher the core options describe (its state store, tombstones)."""
        store = open_state(conf)
        try:
            return cls(conf.tombstone_ttl, store, tombstone_max=conf.tombstone_max)
        except BaseException:
            store.close()
            raise

    @property
    def epoch(self) -> str:
        """The store's epoch: a position ``(epoch, seq)`` means something only within it."""
        return self.store.epoch

    def last_seq(self) -> int:
        """The last sequence number committed (what a view read now covers).

        Without the dispatcher's lock (one attribute read is atomic): feeds
        ask it under :attr:`committed`, which dispatching takes under the lock.
        """
        return self._next - 1

    def close(self) -> None:
        """Release the store (after the last dispatch)."""
        with self._lock:
            self.store.close()

    @property
    def subscribers(self) -> list[Subscription]:
        with self._lock:
            return list(self._subscribers)

    # -- reads for metrics and status ----------------------------------------

    def counters(self) -> dict[str, int]:
        """Changes received, dropped, told by action, and revived, since start.

        ``revived``: creates of entities listed again after a delete that was
        only inferred from their absence (see :mod:`synchronizer.dispatch.ledger`).
        """
        with self._lock:
            return {**self.counts, "revived": self.ledger.revived}

    def entity_count(self) -> int:
        """Entities in the current view (deleted ones excluded)."""
        with self._lock:
            return len(self.ledger)

    def tombstone_count(self) -> int:
        """Deletes the ledger still remembers (see ``tombstone_ttl``, ``tombstone_max``)."""
        with self._lock:
            return self.ledger.tombstone_count()

    # -- changes ----------------------------------------------------------

    def dispatch(self, changes: Iterable[Change]) -> list[Change]:
        """Admit changes through the ledger and fan out; return what was told."""
        with self._lock:
            told = self._admit(changes)
            self._fan_out(told)
            self.ledger.prune(PRUNE_STEP)
        return told

    def _admit(self, changes: Iterable[Change]) -> list[Change]:
        changes = changes if isinstance(changes, list) else list(changes)
        self.ledger.prefetch(changes)
        told = []
        for change in changes:
            self.counts["received"] += 1
            self._note_resync(change)
            admitted = self.ledger.admit(change, self._next)
            if admitted is None:
                self.counts["dropped"] += 1
                continue
            self._next += 1
            self.counts[str(admitted.action)] += 1
            told.append(admitted)
        self.ledger.commit(told, self._next - 1)
        if told:
            with self.committed:
                self.committed.notify_all()
        return told

    def _fan_out(self, told: list[Change]) -> None:
        if not told:
            return
        for sub in self._subscribers:
            if sub.types is None:
                sub.offer_many(told)
            else:
                sub.offer_many([c for c in told if c.entity.type in sub.types])

    # -- resyncs ----------------------------------------------------------

    def begin_resync(self, plugin: str, types: Collection[str], started: str) -> None:
        with self._lock:
            # A cloud's plugin owns that cloud's entities of its types only.
            cloud = clouds.cloud_of(plugin)
            self._resyncs[plugin] = Resync(plugin, frozenset(types), started, cloud=cloud)

    def _note_resync(self, change: Change) -> None:
        source = change.entity.source
        if source is None or not self._resyncs:
            return
        resync = self._resyncs.get(source.plugin)
        if resync is not None:
            resync.note(change.entity)

    def end_resync(
        self, plugin: str, complete: bool, kept: Iterable[tuple[str, str]] = ()
    ) -> list[Change]:
        """Finish a resync; when complete, delete what it no longer lists.

        ``kept``: ``(type, key)`` of records the listing named but could
        not convert; they were listed, so they are not gone.
        """
        with self._lock:
            resync = self._resyncs.pop(plugin, None)
            if resync is None or not complete:
                return []
            resync.seen.update(kept)
            # The listing has ended (its END message came): the gone are known gone now.
            told = self._admit(resync.sweep(self.ledger.current(), timeutil.now()))
            self._fan_out(told)
        if told:
            LOG.info("%s: resync found %d entities gone", plugin, len(told))
        return told

    # -- subscribers and views ---------------------------------------------

    def add(self, sub: Subscription, *, snapshot: bool = True) -> None:
        """Add a subscriber; with ``snapshot``, prefill it with the current view."""
        with self._lock:
            if snapshot:
                with gc_paused():
                    items = self.ledger.current(sub.types, action=Action.SNAPSHOT)
                    types = tuple(sorted(sub.types)) if sub.types is not None else None
                    sub.prefill(items, Synced(types, len(items)))
            self._subscribers.append(sub)

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def get_all(self, types: Collection[str] | None = None) -> list[Entity]:
        with self._lock:
            return self.ledger.entities(types)

    def current(self, types: Collection[str] | None = None) -> tuple[list[Change], int]:
        """The current changes of some types and the last sequence number they cover."""
        with self._lock:
            changes = list(self.ledger.current(types))
            return changes, self._next - 1

    def view_docs(self, types: Collection[str] | None = None) -> tuple[int, list[Any]]:
        """``(seq, items)``: the live entities as JSON text (durable store) or changes.

        A durable store is read on its own connection, without the
        dispatcher's lock: a 100,000-entity view never holds dispatching up.
        """
        read = self.store.view_docs(types)
        if read is not None:
            return read
        changes, seq = self.current(types)
        return seq, changes

    def history(self, after: int, limit: int = 1000) -> list[Change] | None:
        """Committed changes after ``after`` (None: older than the history)."""
        return self.store.history(after, limit)

    def prune(self) -> int:
        """Forget every expired tombstone now; return how many went."""
        with self._lock:
            return self.ledger.prune()
