"""A queue bounded by coalescing per key, as a watch cache would.

A lagging subscriber's pending changes are kept as at most one entry per
entity: a newer change of a key replaces the pending one in place (keeping
its position, so per-key order and the snapshot-before-``synced`` order
hold), with the actions merged so the subscriber still ends up knowing
exactly the entity's current state:

============  ==========  =====================
pending       new         pending becomes
============  ==========  =====================
snapshot      upd/create  snapshot (new state)
snapshot      delete      nothing (never seen)
create        update      create (new state)
create        delete      nothing (never seen)
update        update      update (new state)
update        delete      delete
delete        create/upd  update (new state)
============  ==========  =====================

Memory is therefore bounded by the number of distinct entities, not by the
rate of change.  Threading: every method is thread-safe; one producer (the
dispatcher) and one consumer (the subscriber's thread) are expected.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from synchronizer.model import Action, Change

_KEEP_AS = {
    (Action.SNAPSHOT, Action.CREATE): Action.SNAPSHOT,
    (Action.SNAPSHOT, Action.UPDATE): Action.SNAPSHOT,
    (Action.CREATE, Action.UPDATE): Action.CREATE,
    (Action.CREATE, Action.CREATE): Action.CREATE,
    (Action.UPDATE, Action.UPDATE): Action.UPDATE,
    (Action.UPDATE, Action.CREATE): Action.UPDATE,
    (Action.UPDATE, Action.DELETE): Action.DELETE,
    (Action.DELETE, Action.CREATE): Action.UPDATE,
    (Action.DELETE, Action.UPDATE): Action.UPDATE,
    (Action.DELETE, Action.DELETE): Action.DELETE,
}


def merge(pending: Change, new: Change) -> Change | None:
    """The single change equivalent to ``pending`` then ``new`` (None: nothing)."""
    action = _KEEP_AS.get((pending.action, new.action))
    if action is None:
        return None
    return new if action is new.action else new.replace(action=action)


class CoalescingQueue:
    """FIFO of changes with at most one pending change per ``(type, key)``.

    Items that are not changes (markers such as ``Synced``) are queued as
    they come and never coalesced.
    """

    def __init__(self) -> None:
        self._items: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._cond = threading.Condition()
        self._marker_seq = 0
        self.coalesced = 0
        self.closed = False
        self.busy = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Any) -> None:
        with self._cond:
            self._put(item)
            self._cond.notify()

    def put_many(self, items: list[Any]) -> None:
        with self._cond:
            for item in items:
                self._put(item)
            self._cond.notify()

    def prefill(self, changes: list[Change], marker: Any) -> None:
        """Queue a snapshot (changes of distinct entities) and the marker after it.

        The fast way to fill a new subscriber's queue: built in one pass,
        with no per-change lookup for a pending change to merge with, as
        an empty queue has none.  On a queue that is not empty this is
        ``put_many(changes + [marker])``.
        """
        with self._cond:
            if self._items:
                for item in changes:
                    self._put(item)
            else:
                self._items = collections.OrderedDict(
                    [((c.entity.type, c.entity.key), c) for c in changes]
                )
                if len(self._items) != len(changes):
                    raise ValueError("a snapshot lists an entity twice")
            self._put(marker)
            self._cond.notify()

    def _put(self, item: Any) -> None:
        if not isinstance(item, Change):
            self._marker_seq += 1
            self._items[("marker", self._marker_seq)] = item
            return
        k = (item.entity.type, item.entity.key)
        pending = self._items.get(k)
        if pending is None:
            self._items[k] = item
            return
        self.coalesced += 1
        merged = merge(pending, item)
        if merged is None:
            del self._items[k]
        else:
            self._items[k] = merged

    def get_batch(self, max_items: int, timeout: float | None = None) -> list[Any]:
        """Up to ``max_items`` items in order; [] after ``timeout`` or close."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            batch = []
            while self._items and len(batch) < max_items:
                batch.append(self._items.popitem(last=False)[1])
            self.busy = bool(batch)
            return batch

    def done(self) -> None:
        """The consumer finished the last batch it took."""
        with self._cond:
            self.busy = False
            self._cond.notify_all()

    def wait_empty(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending and the consumer is not busy."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and not self.busy, timeout)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
