"""For graph consumers in another process: subscribe to the stream, get the view.

Over 400 lines on purpose: the consumer's whole side (view, stream, the gate
that joins them without gap or duplicate, resuming) is one module users
read.

::

    from synchronizer import opts
    from synchronizer.outputs import client

    conf = opts.parse(["--config-file", "consumer.conf"])   # transport_url, pool
    handle = client.watch(conf, ["nova.instance"], on_item, since=saved)
    ...
    saved = handle.position        # (epoch, seq): keep it, pass it back as since=
    handle.stop()

:func:`get_all` asks the running daemon over oslo.messaging RPC, in chunks.
:func:`subscribe` listens to the ``message`` sink's topic in the consumer's
own pool.  :func:`watch` combines them without gap or duplicate: it starts
listening first (buffering), then fetches the view, which covers every
change up to a daemon-wide sequence number ``seq``; it delivers the view as
``snapshot`` changes, then a ``Synced`` marker, then the stream's changes
after ``seq``, in ``seq`` order.

Positions and resuming: the daemon numbers the changes it tells with
consecutive ``seq`` numbers within an *epoch* (its state store's id), and
keeps a bounded history of them.  A watcher's ``position`` is ``(epoch,
seq)``: every change up to ``seq`` was delivered.  ``watch(..., since=
position)`` resumes from there without the view: the changes missed come
from the daemon's history, then the stream goes on.  A position from
another epoch or older than the history makes the watcher relist by
itself: one log line, a :class:`Relist` marker to the callback, then the
view as ``snapshot`` items and ``Synced``, as on a first start.  The same
happens live: a gap in the stream's ``seq`` (a message lost, a queue that
did not exist while the consumer was away) is filled from the history after
``GAP_WAIT`` seconds, or by a relist when the history no longer has it.
Bookmarks (the ``seq`` of an idle stream) keep the position fresh.

Where changes wait while a consumer is away: its broker queue for a named
``pool`` (short absences; not across a broker restart unless the queues are
durable), the daemon's history (``history_max_changes``, ``history_max_age``:
an hour by default), and beyond that a relist.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from synchronizer import backend, opts
from synchronizer.errors import DaemonUnreachable
from synchronizer.model import Action, Change, Entity, Synced
from synchronizer.outputs import rpc_api

if TYPE_CHECKING:
    from oslo_config import cfg

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class View:
    """The daemon's entities of some types, the sequence number they cover, its epoch."""

    entities: list[Entity]
    seq: int
    epoch: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Relist:
    """The marker a watcher's callback gets before it relists (the view, then ``Synced``).

    ``reason`` says why: the saved position was from another epoch or older
    than the daemon's history, or the stream lost changes the history no
    longer holds.  ``action`` reads ``"relist"``.  What changed meanwhile is
    unknown, deletes included: at the ``Synced`` that ends the view, a
    consumer that keeps state drops what the view did not name, of the
    types that ``Synced`` covers (``Synced.types``; None: all; in a fleet
    one partition relists alone).
    """

    reason: str
    action: str = "relist"


@dataclasses.dataclass(frozen=True, slots=True)
class Bookmark:
    """The stream's position with no change (the message sink's ``entity.bookmark``)."""

    epoch: str
    seq: int


Position = tuple[str, int]
Item = Change | Synced | Relist
GAP_WAIT = 2.0  # seconds a gap in the stream may take to close before it is filled


def get_all(
    conf: cfg.ConfigOpts,
    entity_types: Collection[str] | None = None,
    *,
    timeout: int = 60,
    partition: str | None = None,
) -> View:
    """The running daemon's current entities of these types (all with None).

    ``partition``: a fleet's partition only (``east.nova``), with its epoch
    and seq (what a fleet watcher's gate relists from).
    """
    opts.register_opts(conf)
    oslo_messaging = backend.messaging()
    transport = oslo_messaging.get_rpc_transport(conf)
    try:
        caller = oslo_messaging.get_rpc_client(transport, rpc_api.target(conf), timeout=timeout)
        types = sorted(entity_types) if entity_types else None
        scope = {"partition": partition} if partition else {}  # a single daemon has none
        try:
            meta = caller.call({}, "snapshot_begin", types=types, **scope)
        except oslo_messaging.MessagingTimeout:
            raise DaemonUnreachable(
                f"no synchronizer daemon answered on RPC topic {conf.rpc_topic!r} within "
                f"{timeout} s (is one running, with the 'message' sink on, on this broker?)"
            ) from None
        entities = [c.entity for c in _chunks(caller, meta)]
        return View(entities, int(meta["seq"]), str(meta.get("epoch") or ""))
    finally:
        transport.cleanup()


def _chunks(caller: Any, meta: dict[str, Any]) -> list[Change]:
    """Every chunk of one snapshot (or history read), from the server that holds it."""
    pinned = caller.prepare(server=meta["server"])
    changes: list[Change] = []
    for index in range(meta["chunks"]):
        part = pinned.call({}, "snapshot_chunk", id=meta["id"], index=index)
        changes.extend(Change.from_dict(d) for d in part)
    pinned.cast({}, "snapshot_end", id=meta["id"])
    return changes


def history_since(
    conf: cfg.ConfigOpts,
    entity_types: Collection[str] | None,
    since: Position,
    *,
    timeout: int = 60,
) -> tuple[list[Change], int] | None:
    """The changes after ``since`` from the daemon's history, and the seq they reach.

    None when the position is gone (another epoch, or older than the history).
    """
    opts.register_opts(conf)
    oslo_messaging = backend.messaging()
    transport = oslo_messaging.get_rpc_transport(conf)
    try:
        caller = oslo_messaging.get_rpc_client(transport, rpc_api.target(conf), timeout=timeout)
        types = sorted(entity_types) if entity_types else None
        try:
            meta = caller.call(
                {}, "history_begin", types=types, epoch=since[0], after=int(since[1])
            )
        except oslo_messaging.MessagingTimeout:
            raise DaemonUnreachable(
                f"no synchronizer daemon answered on RPC topic {conf.rpc_topic!r} within "
                f"{timeout} s"
            ) from None
        if meta.get("gone"):
            return None
        return _chunks(caller, meta), int(meta["seq"])
    finally:
        transport.cleanup()


HANDLED = "handled"  # oslo_messaging.NotificationResult.HANDLED: acknowledge


class _StreamEndpoint:
    """Turns the sink's notifications into changes (and bookmarks, for a watcher)."""

    def __init__(
        self,
        types: frozenset[str] | None,
        deliver: Callable[[Change], None],
        on_raw: Callable[[Change | Bookmark, str | None], None] | None = None,
    ) -> None:
        self.types = types
        self.deliver = deliver
        self.on_raw = on_raw  # a watcher's gate: every change and bookmark, any type

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        if event_type == "entity.bookmark":
            self._bookmark(payload)
            return HANDLED
        try:
            change = Change.from_dict(payload)
        except (ValueError, TypeError):
            LOG.warning("Ignoring malformed change %s from %s", event_type, publisher_id)
            return HANDLED
        if self.on_raw is not None:
            epoch = payload.get("epoch")
            self.on_raw(change, epoch if isinstance(epoch, str) else None)
        elif self.types is None or change.entity.type in self.types:
            self.deliver(change)
        return HANDLED

    def _bookmark(self, payload: Any) -> None:
        if self.on_raw is None or not isinstance(payload, dict):
            return
        try:
            mark = Bookmark(str(payload["epoch"]), int(payload["seq"]))
        except (KeyError, TypeError, ValueError, OverflowError):
            return
        self.on_raw(mark, mark.epoch)


class Handle:
    """A running subscription; ``stop()`` ends it.

    A subscription in an *ephemeral* pool (the default: one per process)
    deletes its queue on the broker when it stops, so that no queue is
    left filling after the consumer is gone.  One in a *named* pool keeps
    it: the broker then holds what is published while the consumer is away.
    """

    def __init__(self, listener: Any, transport: Any, ephemeral_queue: str | None = None) -> None:
        self._listener = listener
        self._transport = transport
        self._ephemeral_queue = ephemeral_queue
        self.gate: _Gate | None = None

    @property
    def position(self) -> Position | None:
        """``(epoch, seq)`` delivered so far (a watcher's; None for a plain subscription)."""
        return self.gate.position if self.gate is not None else None

    @property
    def relists(self) -> int:
        """How many times the watcher relisted (0 after a clean resume)."""
        return self.gate.relists if self.gate is not None else 0

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.close()
        self._listener.stop()
        self._listener.wait()
        if self._ephemeral_queue is not None:
            _delete_queue(self._transport, self._ephemeral_queue)
        self._transport.cleanup()


EPHEMERAL_PREFIX = "synchronizer-client-"


def default_pool() -> str:
    """The ephemeral pool of this process (a queue deleted when it stops)."""
    return f"{EPHEMERAL_PREFIX}{socket.gethostname()}-{os.getpid()}"


def _delete_queue(transport: Any, name: str) -> None:
    """Delete a pool's queue through the transport's own connection (AMQP drivers only).

    oslo.messaging cannot declare a pool queue auto-delete or expiring, so the
    client deletes its ephemeral queue itself; a consumer killed outright
    leaves it to the broker policy the README gives (``expires``).
    """
    get_connection = getattr(transport._driver, "_get_connection", None)  # no public API
    if get_connection is None:
        return  # a driver without AMQP queues (the fake: driver)
    try:
        with get_connection() as context:
            context.connection.channel.queue_delete(name, nowait=True)
    except Exception as exc:  # noqa: BLE001 - the broker may be gone; the policy expires it
        LOG.warning("Could not delete the queue %s of this consumer: %s", name, exc)


def subscribe(
    conf: cfg.ConfigOpts,
    entity_types: Collection[str] | None,
    callback: Callable[[Change], None],
    *,
    pool: str | None = None,
    _raw: Callable[[Change | Bookmark, str | None], None] | None = None,
) -> Handle:
    """Call ``callback`` for every published change of these types."""
    opts.register_opts(conf)
    oslo_messaging = backend.messaging()
    transport = oslo_messaging.get_notification_transport(conf)
    types = frozenset(entity_types) if entity_types else None
    listener = oslo_messaging.get_notification_listener(
        transport,
        [oslo_messaging.Target(topic=conf.message_topic)],
        [_StreamEndpoint(types, callback, _raw)],
        pool=pool or default_pool(),
    )
    listener.start()
    return Handle(listener, transport, None if pool else default_pool())


def watch(
    conf: cfg.ConfigOpts,
    entity_types: Collection[str] | None,
    callback: Callable[[Item], None],
    *,
    pool: str | None = None,
    since: Position | dict[str, int] | None = None,
    timeout: int = 60,
) -> Handle:
    """The view (or, with ``since``, what was missed), then live changes: no gap, no duplicate.

    See the module docstring for positions, resuming and relisting.  The
    callback is called on the listener's threads, one call at a time.
    """
    from synchronizer.outputs import fleet_client

    partitions = fleet_client.fleet_streams(conf, timeout)
    if partitions is not None:  # a fleet: a position per partition, hidden in one
        # A single daemon's position names no partition's epoch: each relists.
        resume = since if isinstance(since, dict) or since is None else {}
        return fleet_client.watch(
            conf, entity_types, callback, partitions, pool=pool, since=resume, timeout=timeout
        )
    types = tuple(sorted(entity_types)) if entity_types else None
    gate = _Gate(
        callback,
        types,
        view=lambda: get_all(conf, entity_types, timeout=timeout),
        history=lambda position: history_since(conf, entity_types, position, timeout=timeout),
    )
    handle = subscribe(conf, entity_types, lambda change: None, pool=pool, _raw=gate.offer)
    handle.gate = gate
    try:
        gate.open(since)
    except BaseException:
        handle.stop()
        raise
    return handle


class _Gate:
    """Delivers a watcher's stream in ``seq`` order from its position, filling gaps.

    Stream items (changes of every type, and bookmarks) are buffered until
    :meth:`open` has delivered the view or the history up to a ``seq``;
    then each item is delivered when every ``seq`` before it has been:
    items that arrive out of order (the listener's executor runs several
    threads) wait for the ones before, repeats and items at or below the
    position are dropped, and a gap still open after ``gap_wait`` seconds
    (or announced by a bookmark) is filled from the daemon's history, or by
    a relist when the history no longer has it.  Changes of other types
    advance the position without reaching the callback.  Callbacks are
    serialised (under the gate's lock).
    """

    def __init__(
        self,
        callback: Callable[[Item], None],
        types: tuple[str, ...] | None,
        *,
        view: Callable[[], View],
        history: Callable[[Position], tuple[list[Change], int] | None],
        gap_wait: float = GAP_WAIT,
    ) -> None:
        self.callback = callback
        self.types = types
        self.wanted = frozenset(types) if types else None
        self._view = view
        self._history = history
        self.gap_wait = gap_wait
        self.lock = threading.RLock()
        self.epoch = ""
        self.seq = 0
        self.opened = False
        self.pending: dict[int, Change | None] = {}  # seq → change (None: a bookmark's end)
        self.buffer: list[tuple[Change | Bookmark, str | None]] = []
        self.announced = 0  # the highest seq a bookmark said exists
        self.relists = 0
        self._timer: threading.Timer | None = None
        self._closed = False

    @property
    def position(self) -> Position:
        with self.lock:
            return (self.epoch, self.seq)

    # -- opening ------------------------------------------------------------

    def open(self, since: Position | dict[str, int] | None, *, relist: str | None = None) -> None:
        """From the view (``since`` None; ``relist``: why, for a Relist marker first), or
        resumed from ``since``."""
        with self.lock:
            if since is None:
                self._relist(relist)
            elif isinstance(since, dict):  # saved from a fleet's watcher
                self._relist("the saved position is a fleet's, one per partition")
            else:
                self._resume(since)
            self.opened = True
            buffered, self.buffer = self.buffer, []
            for item, epoch in buffered:
                self._take(item, epoch)

    def _resume(self, since: Position) -> None:
        missed = self._history(since)
        if missed is None:
            self._relist(
                f"the saved position {since[0]}:{since[1]} is from another epoch or older "
                "than the daemon's history"
            )
            return
        changes, seq = missed
        self.epoch, self.seq = since[0], int(since[1])
        for change in changes:
            if change.seq > self.seq:
                self._call(change)
        self.seq = max(self.seq, seq)
        LOG.info("Resumed after seq %d: %d changes missed, at seq %d", since[1], len(changes), seq)

    def _relist(self, reason: str | None) -> None:
        if reason is not None:
            self.relists += 1
            LOG.warning("Relisting: %s", reason)
            self.callback(Relist(reason))
        view = self._view()
        for entity in view.entities:
            self.callback(Change(Action.SNAPSHOT, entity))
        self.callback(Synced(self.types, len(view.entities)))
        self.epoch, self.seq = view.epoch, view.seq
        self.pending = {s: c for s, c in self.pending.items() if s > view.seq}
        self._drain()

    # -- the stream -----------------------------------------------------------

    def offer(self, item: Change | Bookmark, epoch: str | None) -> None:
        with self.lock:
            if self._closed:
                return
            if not self.opened:
                self.buffer.append((item, epoch))
            else:
                self._take(item, epoch)

    def _take(self, item: Change | Bookmark, epoch: str | None) -> None:
        if epoch and self.epoch and epoch != self.epoch:
            self._relist(f"the daemon's state changed epoch ({self.epoch} → {epoch})")
            return
        if isinstance(item, Bookmark):
            self.announced = max(self.announced, item.seq)
        elif item.seq > self.seq:
            self.pending[item.seq] = item
            self._drain()
        if self.pending or self.announced > self.seq:
            self._arm()

    def _drain(self) -> None:
        pending = self.pending
        while self.seq + 1 in pending:
            change = pending.pop(self.seq + 1)
            self.seq += 1
            if change is not None:
                self._call(change)
        if not pending and self.announced <= self.seq and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _call(self, change: Change) -> None:
        if self.wanted is None or change.entity.type in self.wanted:
            self.callback(change)

    def _arm(self) -> None:
        if self._timer is None and not self._closed:
            self._timer = threading.Timer(self.gap_wait, self._fill)
            self._timer.daemon = True
            self._timer.start()

    def _fill(self) -> None:
        """A gap outlived ``gap_wait``: take what it lacks from the history (or relist)."""
        with self.lock:
            self._timer = None
            if self._closed or not self.opened:
                return
            if not self.pending and self.announced <= self.seq:
                return
            try:
                missed = self._history((self.epoch, self.seq))
                if missed is None:
                    self._relist(f"the stream lost changes after seq {self.seq}, no longer kept")
                    return
                changes, seq = missed
                for change in changes:
                    if change.seq > self.seq:
                        self._call(change)
                LOG.info("Gap after seq %d filled: %d from history", self.seq, len(changes))
                self.seq = max(self.seq, seq)
                self.pending = {s: c for s, c in self.pending.items() if s > self.seq}
                self._drain()
            except Exception as exc:  # noqa: BLE001 - the daemon is away: try again later
                LOG.warning("Could not fill a gap after seq %d (%s); retrying", self.seq, exc)
            if self.pending or self.announced > self.seq:
                self._arm()

    def close(self) -> None:
        with self.lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
