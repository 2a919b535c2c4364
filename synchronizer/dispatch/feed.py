"""Feeds: the sinks as consumers of the store's history, each with a committed position.

A sink (``log``, ``jsonl``, ``message``) is not offered changes as they
are dispatched: its :class:`Feed` reads them from the store's history
(:meth:`~synchronizer.dispatch.store.StateStore.history`), in ``seq``
order, hands each to the sink, and saves how far it got
(:meth:`~synchronizer.dispatch.store.StateStore.save_position`).  So:

* a sink that cannot send (the broker is away) delays what it sends and
  loses nothing: it resumes from its position when it can, in order;
* after a daemon restart (durable store) a sink sends what it had not sent,
  then only what changed while the daemon was down: with nothing changed,
  nothing;
* a change is sent again only when the daemon stopped (or was killed)
  after sending it and before saving the position: the same change with
  the same ``seq``, which a consumer drops by ``seq``.

The history keeps what a running feed has not sent (it is never trimmed
past a feed's position).  A feed whose saved position is older than the
history (the store's history was trimmed while the daemon was down) logs
what it skipped and goes on from the oldest change the history holds.

A sink may offer ``bookmark(epoch, seq)``: the feed calls it every
``bookmark_interval`` seconds while nothing is sent, so consumers learn
the current ``seq`` of an idle stream.

Threading: each feed runs on its own thread; ``start()`` and ``stop()``
from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from synchronizer.errors import Undelivered

if TYPE_CHECKING:
    from synchronizer.dispatch.dispatcher import Dispatcher

LOG = logging.getLogger(__name__)

SAVE_EVERY = 0.5  # seconds between position saves while sending (and at stop)
LOG_AGAIN = 60.0  # seconds between the ERROR lines of a history that cannot be read


class Feed:
    """Sends the history to one sink from its committed position.

    ``name`` is the position's name in the store (the sink's name).  A new
    feed (no saved position) starts at the stream's current end: a sink
    added to the configuration does not replay the history.  Invariant:
    the saved position never passes a change the sink did not take.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        sink: Any,
        name: str,
        *,
        batch: int = 256,
        bookmark_interval: float = 0.0,
    ) -> None:
        self.dispatcher = dispatcher
        self.store = dispatcher.store
        self.sink = sink
        self.name = name
        self.batch = batch
        self.bookmark_interval = bookmark_interval
        self.position = 0
        # What metrics read of every subscriber (a feed never coalesces).
        self.delivered = 0
        self.failures = 0
        self.coalesced = 0
        self._saved = 0
        self._saved_at = 0.0
        self._failing_since: float | None = None  # since when the history cannot be read
        self._said = 0.0  # when that was last logged at ERROR
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"feed-{name}", daemon=True)

    @property
    def backlog(self) -> int:
        """Committed changes the sink has not taken yet."""
        return max(0, self.dispatcher.last_seq() - self.position)

    def start(self) -> None:
        if hasattr(self.sink, "epoch"):
            self.sink.epoch = self.dispatcher.epoch  # stamped on what it publishes
        saved = self.store.position(self.name)
        self.position = saved if saved is not None else self.dispatcher.last_seq()
        self._save(force=True)
        if saved is not None and saved < self.dispatcher.last_seq():
            LOG.info(
                "Sink %s resumes after seq %d (%d changes to send)",
                self.name,
                saved,
                self.dispatcher.last_seq() - saved,
            )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is committed (within ``timeout``), save the position, stop."""
        deadline = time.monotonic() + timeout
        while self.backlog and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        self._stopping.set()
        interrupt = getattr(self.sink, "interrupt", None)
        if interrupt is not None:
            interrupt()
        with self.dispatcher.committed:
            self.dispatcher.committed.notify_all()
        if self._thread.is_alive():
            self._thread.join(max(0.1, deadline - time.monotonic()))
        self._save(force=True)

    def _run(self) -> None:
        last_sent = time.monotonic()
        while not self._stopping.is_set():
            try:
                changes = self.dispatcher.history(self.position, self.batch)
            except Exception:  # whatever the store raises is retried, and said once
                level, down = self._history_failed()
                LOG.log(
                    level,
                    "Sink %s could not read the history (for %.0f s); retrying every second",
                    self.name,
                    down,
                    exc_info=True,
                )
                self._stopping.wait(1.0)
                continue
            if self._failing_since is not None:
                LOG.info(
                    "Sink %s reads the history again (after %.0f s)",
                    self.name,
                    time.monotonic() - self._failing_since,
                )
                self._failing_since = None
            if changes is None:
                self._skip()
                continue
            if changes:
                if not self._send(changes):
                    return
                last_sent = time.monotonic()
                continue
            self._save()
            if self._bookmark_due(last_sent):
                self._bookmark()
                last_sent = time.monotonic()
            with self.dispatcher.committed:
                if self.dispatcher.last_seq() <= self.position and not self._stopping.is_set():
                    self.dispatcher.committed.wait(self._idle_wait())

    def _history_failed(self) -> tuple[int, float]:
        """How loud to say the history cannot be read, and for how long it could not.

        ERROR (with the traceback) the first time, then once a minute;
        DEBUG in between.  The store being down is ridden out by retrying
        every second, and a traceback a second would bury the rest of the log.
        """
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = self._said = now
            return logging.ERROR, 0.0
        if now - self._said >= LOG_AGAIN:
            self._said = now
            return logging.ERROR, now - self._failing_since
        return logging.DEBUG, now - self._failing_since

    def _send(self, changes: list[Any]) -> bool:
        for change in changes:
            try:
                self.sink(change)
            except Undelivered:
                return False  # stopping: the position stays before this change
            except Exception:
                self.failures += 1
                # A change a sink refuses for good (not an outage: a sink retries
                # those itself) is logged and passed, so one change cannot stop a sink.
                LOG.exception(
                    "Sink %s failed on %s %s seq %d; passed",
                    self.name,
                    change.entity.type,
                    change.entity.key,
                    change.seq,
                )
            else:
                self.delivered += 1
            self.position = change.seq
        self._save()
        return True

    def _skip(self) -> None:
        floor = self.store.history_floor()
        LOG.warning(
            "Sink %s: the changes after seq %d are older than the history (it starts after "
            "seq %d): they are not sent, and its consumers relist",
            self.name,
            self.position,
            floor,
        )
        self.position = floor
        self._save(force=True)

    def _save(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.position == self._saved and not force:
            return
        if force or now - self._saved_at >= SAVE_EVERY:
            self.store.save_position(self.name, self.position)
            self._saved = self.position
            self._saved_at = now

    def _bookmark_due(self, last_sent: float) -> bool:
        return (
            self.bookmark_interval > 0
            and hasattr(self.sink, "bookmark")
            and time.monotonic() - last_sent >= self.bookmark_interval
        )

    def _bookmark(self) -> None:
        try:
            self.sink.bookmark(self.dispatcher.epoch, self.position)
        except Undelivered:
            return
        except Exception as exc:  # noqa: BLE001 - a bookmark is advisory
            LOG.debug("Sink %s: bookmark not sent: %s", self.name, exc)

    def _idle_wait(self) -> float:
        if self.bookmark_interval > 0:
            return min(self.bookmark_interval, SAVE_EVERY * 2)
        return SAVE_EVERY * 2
