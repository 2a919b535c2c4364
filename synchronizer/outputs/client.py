"""For graph consumers in another process: subscribe to the stream, get the view.

::

    from synchronizer import opts
    from synchronizer.outputs import client

    conf = opts.parse(["--config-file", "consumer.conf"])   # transport_url, pool
    handle = client.watch(conf, ["nova.instance"], on_item, pool="my-cmdb")
    ...
    handle.stop()

:func:`get_all` asks the running daemon over oslo.messaging RPC, in chunks.
:func:`subscribe` listens to the ``message`` sink's topic in the consumer's
own pool.  :func:`watch` combines them without gap or duplicate: it starts
listening first (buffering), then fetches the view, which covers every
change up to a daemon-wide sequence number ``seq``; it delivers the view as
``snapshot`` changes, then a ``Synced`` marker, then only stream changes
with a sequence number above ``seq``.
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
    """The daemon's entities of some types and the sequence number they cover."""

    entities: list[Entity]
    seq: int


def get_all(
    conf: cfg.ConfigOpts, entity_types: Collection[str] | None = None, *, timeout: int = 60
) -> View:
    """The running daemon's current entities of these types (all with None)."""
    opts.register_opts(conf)
    oslo_messaging = backend.messaging()
    transport = oslo_messaging.get_rpc_transport(conf)
    try:
        caller = oslo_messaging.get_rpc_client(transport, rpc_api.target(conf), timeout=timeout)
        types = sorted(entity_types) if entity_types else None
        try:
            meta = caller.call({}, "snapshot_begin", types=types)
        except oslo_messaging.MessagingTimeout:
            raise DaemonUnreachable(
                f"no synchronizer daemon answered on RPC topic {conf.rpc_topic!r} within "
                f"{timeout} s (is one running, with the 'message' sink on, on this broker?)"
            ) from None
        pinned = caller.prepare(server=meta["server"])
        entities: list[Entity] = []
        for index in range(meta["chunks"]):
            part = pinned.call({}, "snapshot_chunk", id=meta["id"], index=index)
            entities.extend(Change.from_dict(d).entity for d in part)
        pinned.cast({}, "snapshot_end", id=meta["id"])
        return View(entities, int(meta["seq"]))
    finally:
        transport.cleanup()


HANDLED = "handled"  # oslo_messaging.NotificationResult.HANDLED: acknowledge


class _StreamEndpoint:
    def __init__(self, types: frozenset[str] | None, deliver: Callable[[Change], None]) -> None:
        self.types = types
        self.deliver = deliver

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        try:
            change = Change.from_dict(payload)
        except (ValueError, TypeError):
            LOG.warning("Ignoring malformed change %s from %s", event_type, publisher_id)
            return HANDLED
        if self.types is None or change.entity.type in self.types:
            self.deliver(change)
        return HANDLED


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

    def stop(self) -> None:
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
) -> Handle:
    """Call ``callback`` for every published change of these types."""
    opts.register_opts(conf)
    oslo_messaging = backend.messaging()
    transport = oslo_messaging.get_notification_transport(conf)
    types = frozenset(entity_types) if entity_types else None
    listener = oslo_messaging.get_notification_listener(
        transport,
        [oslo_messaging.Target(topic=conf.message_topic)],
        [_StreamEndpoint(types, callback)],
        pool=pool or default_pool(),
    )
    listener.start()
    return Handle(listener, transport, None if pool else default_pool())


def watch(
    conf: cfg.ConfigOpts,
    entity_types: Collection[str] | None,
    callback: Callable[[Change | Synced], None],
    *,
    pool: str | None = None,
    timeout: int = 60,
) -> Handle:
    """The view as snapshot items, a Synced marker, then live changes: no gap, no duplicate."""
    gate = _Gate(callback)
    handle = subscribe(conf, entity_types, gate.offer, pool=pool)
    try:
        view = get_all(conf, entity_types, timeout=timeout)
    except BaseException:
        handle.stop()
        raise
    gate.open(view, tuple(sorted(entity_types)) if entity_types else None)
    return handle


class _Gate:
    """Buffers stream changes until the view is delivered, then orders per key.

    The listener's executor runs several threads, so two changes of one
    entity may arrive out of order; a change whose sequence number is not
    above the last one delivered for its key (or covered by the view) is
    stale and dropped.  Callbacks are serialised.
    """

    def __init__(self, callback: Callable[[Change | Synced], None]) -> None:
        self.callback = callback
        self.lock = threading.Lock()
        self.buffer: list[Change] = []
        self.seq: int | None = None
        self.last: dict[tuple[str, str], int] = {}

    def offer(self, change: Change) -> None:
        with self.lock:
            if self.seq is None:
                self.buffer.append(change)
            else:
                self._deliver(change)

    def _deliver(self, change: Change) -> None:
        k = (change.entity.type, change.entity.key)
        if change.seq <= max(self.last.get(k, 0), self.seq or 0):
            return
        self.last[k] = change.seq
        self.callback(change)

    def open(self, view: View, types: tuple[str, ...] | None) -> None:
        with self.lock:
            for entity in view.entities:
                self.callback(Change(Action.SNAPSHOT, entity))
            self.callback(Synced(types, len(view.entities)))
            self.seq = view.seq
            for change in sorted(self.buffer, key=lambda c: c.seq):
                self._deliver(change)
            self.buffer.clear()
