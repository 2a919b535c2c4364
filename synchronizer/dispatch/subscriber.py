"""Subscribers: each with its own coalescing queue and its own thread.

A :class:`Subscription` delivers the changes of some entity types to a
callback (called on the subscription's thread, never the dispatcher's) or
to a queue the consumer supplies.  A callback that raises is logged and
counted and the subscription goes on; a slow callback only grows its own
backlog, which coalescing per key keeps bounded.

Lifecycle: created and fed by the dispatcher; ``start()`` starts the
thread; ``close()`` stops it after the items already pending (or at once
with ``drain=False``).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Collection
from typing import Any, Protocol

from synchronizer.dispatch.coalesce import CoalescingQueue
from synchronizer.model import Change, Synced

LOG = logging.getLogger(__name__)

Item = Change | Synced

_ids = itertools.count(1)


class Callback(Protocol):
    """What ``register()`` takes: called once per change or marker."""

    def __call__(self, item: Item, /) -> Any: ...


class Subscription:
    """One consumer of the change stream.

    ``types`` is the set of entity types it wants (None: all).  Counters:
    ``delivered``, ``failures`` (callback raised), ``backlog`` (pending
    items) and ``coalesced`` (changes merged into a pending one).
    """

    def __init__(
        self,
        types: Collection[str] | None,
        deliver: Callable[[Item], Any],
        *,
        name: str | None = None,
        batch: int = 256,
    ) -> None:
        self.types = frozenset(types) if types is not None else None
        self.name = name or f"subscriber-{next(_ids)}"
        self._deliver = deliver
        self._batch = batch
        self._queue = CoalescingQueue()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.delivered = 0
        self.failures = 0

    @property
    def backlog(self) -> int:
        return len(self._queue)

    @property
    def coalesced(self) -> int:
        return self._queue.coalesced

    def offer(self, item: Item) -> None:
        """Queue an item (the dispatcher has already filtered by type)."""
        self._queue.put(item)

    def offer_many(self, items: list[Item]) -> None:
        if items:
            self._queue.put_many(items)

    def prefill(self, snapshot: list[Change], synced: Synced) -> None:
        """Queue a new subscriber's snapshot items and its ``synced`` marker."""
        self._queue.prefill(snapshot, synced)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 5.0, *, drain: bool = True) -> None:
        """Stop the thread (after pending items when ``drain``)."""
        if drain:
            self.wait_idle(timeout)
        self._queue.close()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until everything offered so far has been delivered."""
        return self._queue.wait_empty(timeout)

    def _run(self) -> None:
        while True:
            items = self._queue.get_batch(self._batch, timeout=1.0)
            if not items:
                if self._queue.closed:
                    return
                continue
            for item in items:
                self._call(item)
            self._queue.done()

    def _call(self, item: Item) -> None:
        try:
            self._deliver(item)
        except Exception:
            self.failures += 1
            LOG.exception("Subscriber %s raised on %s; it goes on", self.name, _describe(item))
        else:
            self.delivered += 1


def queue_deliverer(target: queue.Queue[Any]) -> Callable[[Item], None]:
    """Deliver into a consumer's queue (blocking only this subscription)."""
    return target.put


def _describe(item: Item) -> str:
    if isinstance(item, Change):
        return f"{item.action} {item.entity.type}/{item.entity.key}"
    return "synced marker"
