"""The notification worker: one oslo.messaging listener for every push plugin.

All notification plugins share one worker process running one notification
listener (threading executor) on the union of their ``(exchange, topic)``
targets, in its own **pool** (``[DEFAULT] notification_pool``): the pool is
the queue name suffix, so the worker gets its own copy of every message and
steals nothing from other consumers of the same topics.  With
``notification_workers`` > 1 there are that many such processes, all in the
same pool: the broker shares the pool's queues between them, and the
dispatcher's ledger puts each entity's changes back in timestamp order.  Each message goes
through :class:`~synchronizer.workers.converter.Converter`, alone: a bad one
is counted and dropped and the others go on.  Every message is
acknowledged, bad ones included: nothing is requeued forever.

With ``notification_batch_size = 1`` (the default) the listener is the
plain one, one message a call (:class:`Endpoint`): nothing waits for a
batch to fill.  A larger size selects oslo.messaging's *batch* listener
(:class:`BatchEndpoint`), which waits up to ``notification_batch_timeout``
for a batch to fill: fewer, larger hand-offs for a very bursty bus, at the
cost of that wait on every quiet-time notification.

Either way the changes cross to the dispatcher through one
:class:`Handoff`: the endpoint that finds it idle sends, the others only
append while that send is in flight.  Batching is therefore natural: a lone
notification goes out at once on the thread that converted it, and under
load what arrives during a send goes out with the next chunk.  The
executor has one thread by default (``notification_executor_threads``):
conversion is CPU work under the interpreter lock, and more threads only
add contention.

::

    handoff = Handoff(send_chunk, chunk_size=1000)
    server = build_listener(conf, plugins, converter, handoff.put)
    server.start(override_pool_size=conf.notification_executor_threads)
    ...
    server.stop()
    server.wait()     # every consumed message converted and its changes sent
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from synchronizer import backend, clouds, plugin_loader, wire
from synchronizer.plugin_base import NotificationPlugin
from synchronizer.workers.converter import Converter
from synchronizer.workers.process import (
    EXIT_PERMANENT,
    Sender,
    name_process,
    prepare_child,
    reporter,
)

if TYPE_CHECKING:
    import oslo_messaging

    from synchronizer.workers.supervisor import GateEnd

LOG = logging.getLogger(__name__)

WORKER_NAME = "notifications"


def worker_names(count: int, cloud: str | None = None) -> list[str]:
    """The supervisor's names of ``count`` notification workers (of a cloud: ``east/...``)."""
    if count == 1:
        return [clouds.qualify(cloud, WORKER_NAME)]
    return [clouds.qualify(cloud, f"{WORKER_NAME}-{i}") for i in range(1, count + 1)]


STATS_INTERVAL = 2.0


class Handoff:
    """Hands changes on in chunks; whoever finds it idle sends for everyone.

    ``put()`` appends to a buffer.  If no send is in progress, the calling
    thread becomes the sender: it sends everything buffered as chunks of at
    most ``chunk_size`` through ``send_chunk``, then whatever other threads
    put meanwhile, until the buffer is empty.  A quiet bus therefore sends
    each change at once, on the thread that converted it (no timer, no
    thread switch); a busy one pays one encode and one pipe write per chunk
    instead of per message.  Changes keep their ``put()`` order.

    A ``put()`` that finds a send in progress returns at once, so its
    message is acknowledged before its changes cross the pipe.  Nothing is
    lost when the worker stops: the listener's ``wait()`` waits for the
    executor threads, and the thread that sends does not return before the
    buffer is empty (:meth:`flush` waits for that too).  A worker killed
    outright (``SIGKILL``) loses what was acknowledged but not yet sent; the
    next poll cycle of the matching collector corrects it, as it does any
    missed notification.

    A ``send_chunk`` that raises is logged and its chunk dropped (the pipe
    is gone: the worker is on its way out); the others are still tried.

    Threading: ``put()`` and ``flush()`` from any thread.
    """

    def __init__(self, send_chunk: Callable[[list[Any]], None], chunk_size: int) -> None:
        self.send_chunk = send_chunk
        self.chunk_size = chunk_size
        self._buffer: list[Any] = []
        self._sending = False
        self._cond = threading.Condition()

    def put(self, changes: list[Any]) -> None:
        with self._cond:
            self._buffer.extend(changes)
            if self._sending:
                return
            self._sending = True
        self._send_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything put so far has been sent."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._sending, timeout)

    def _send_all(self) -> None:
        while True:
            with self._cond:
                taken, self._buffer = self._buffer, []
                if not taken:
                    self._sending = False
                    self._cond.notify_all()
                    return
            for chunk in wire.chunked(taken, self.chunk_size):
                try:
                    self.send_chunk(chunk)
                except Exception:  # the pipe is gone; the worker is stopping
                    LOG.exception("Notification worker could not hand %d changes on", len(chunk))


HANDLED = "handled"  # oslo_messaging.NotificationResult.HANDLED: acknowledge


def _priorities() -> tuple[str, ...]:
    """oslo.messaging's notification priorities (``audit`` ... ``sample``)."""
    return tuple(backend.messaging().notify.dispatcher.PRIORITIES)


class Endpoint:
    """Endpoint of the plain listener: one message a call, every priority alike.

    oslo.messaging calls an endpoint's method named after the message's
    priority; this endpoint has one for each of oslo.messaging's priorities
    (set per instance from its list, not written out by hand), all handled
    alike.  The message's changes go to ``emit``; bad input is counted by
    the converter and gives none.  Threading: called on the executor's
    threads.
    """

    _HANDLER = "_on_message"  # the method every priority's method calls

    def __init__(
        self,
        converter: Converter,
        emit: Callable[[list[Any]], None],
        priorities: Sequence[str] | None = None,
    ) -> None:
        self.converter = converter
        self.emit = emit
        handler = getattr(self, self._HANDLER)
        for priority in _priorities() if priorities is None else priorities:
            setattr(self, priority, functools.partial(handler, priority))

    def convert(
        self, priority: str, publisher_id: Any, event_type: Any, payload: Any, md: Any
    ) -> list[Any]:
        """The changes of one message (bad input is counted and gives none)."""
        metadata = md if isinstance(md, dict) else {}
        raw = {
            "priority": priority,
            "publisher_id": publisher_id,
            "event_type": event_type,
            "payload": payload,
            "timestamp": metadata.get("timestamp"),
            "message_id": metadata.get("message_id"),
        }
        return self.converter.convert(raw)

    def _on_message(
        self, priority: str, ctxt: Any, publisher_id: Any, event_type: Any, payload: Any, md: Any
    ) -> str:
        try:
            changes = self.convert(priority, publisher_id, event_type, payload, md)
        except Exception:  # the converter counts bad input; this is a bug, not input
            LOG.exception("Notification worker failed on one message; it goes on")
            return HANDLED
        if changes:
            self.emit(changes)
        return HANDLED


class BatchEndpoint(Endpoint):
    """Endpoint of the batch listener: each message converted alone, one hand-off.

    oslo.messaging hands over up to ``notification_batch_size`` messages at
    a time, to a method named after their priority (one per priority, as in
    :class:`Endpoint`); each goes through the :class:`Endpoint` conversion
    on its own (a bad one is counted and dropped, the others go on), and the
    changes of the whole batch go to ``emit`` together.  Every message of
    the batch is acknowledged afterwards, whatever it held.
    """

    _HANDLER = "_on_batch"

    def _on_batch(self, priority: str, messages: list[dict[str, Any]]) -> str:
        changes: list[Any] = []
        for message in messages:
            try:
                changes.extend(
                    self.convert(
                        priority,
                        message.get("publisher_id"),
                        message.get("event_type"),
                        message.get("payload"),
                        message.get("metadata"),
                    )
                )
            except Exception:  # the converter counts bad input; this is a bug, not input
                LOG.exception("Notification worker failed on one message; the batch goes on")
        if changes:
            self.emit(changes)
        return HANDLED


def targets_of(plugins: list[NotificationPlugin]) -> list[oslo_messaging.Target]:
    """The distinct (exchange, topic) targets the plugins listen on."""
    pairs = sorted({(p.exchange, t) for p in plugins for t in p.topics})
    oslo_messaging = backend.messaging()
    return [oslo_messaging.Target(exchange=ex, topic=topic) for ex, topic in pairs]


def build_listener(
    conf: cfg.ConfigOpts,
    plugins: list[NotificationPlugin],
    converter: Converter,
    emit: Callable[[list[Any]], None],
    url: str | None = None,
    pool: str | None = None,
) -> oslo_messaging.MessageHandlingServer:
    """The worker's listener: plain, or batch when ``notification_batch_size`` > 1.

    ``url`` is the bus of the plugins' cloud (None: the configured transport),
    ``pool`` its listener pool (None: ``notification_pool``).
    """
    oslo_messaging = backend.messaging()
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    common: dict[str, Any] = {
        "executor": "threading",
        "pool": pool or conf.notification_pool,
        "allow_requeue": False,
    }
    if conf.notification_batch_size <= 1:
        return oslo_messaging.get_notification_listener(
            transport, targets_of(plugins), [Endpoint(converter, emit)], **common
        )
    return oslo_messaging.get_batch_notification_listener(
        transport,
        targets_of(plugins),
        [BatchEndpoint(converter, emit)],
        batch_size=conf.notification_batch_size,
        batch_timeout=conf.notification_batch_timeout,
        **common,
    )


def notification_main(
    conf_args: list[str],
    names: list[str],
    chunk_size: int,
    conn: Connection,
    pool: str | None = None,
    gate: GateEnd | None = None,
) -> None:
    """Entry point of the notification worker process (multiprocessing target).

    ``names`` are plugins of one cloud (or of none): the worker listens on
    that cloud's bus, in the pool ``pool`` (default: ``notification_pool``,
    and for a cloud ``<notification_pool>-<cloud>``, so that clouds whose
    buses share a broker never share a queue), and its changes are that
    cloud's entities.
    """
    title = f"notifications {', '.join(names)}"
    conf, stop = prepare_child(conf_args, title, standby=gate is not None)
    cloud = clouds.cloud_of(names[0]) if names else None
    pool = pool or clouds.pool(conf.notification_pool, cloud)
    send = Sender(conn)
    loaded = plugin_loader.load(conf, names, NotificationPlugin, reporter(send))
    if not loaded:
        raise SystemExit(EXIT_PERMANENT)
    plugins = list(loaded.values())
    converter = Converter(plugins, conf.notification_max_bytes)

    def send_chunk(chunk: list[Any]) -> None:
        send(wire.Changes.of(chunk))

    handoff = Handoff(send_chunk, chunk_size)
    url = clouds.transport_url(conf, cloud)
    listener = build_listener(conf, plugins, converter, handoff.put, url, pool)
    # On standby (``gate``): built, not started; nothing is taken from the bus yet.
    if gate is not None:
        if not gate.wait(stop):
            return
        name_process(title)
    for name in loaded:
        send(wire.PluginStatus(name, wire.PluginState.RUNNING))
    listener.start(override_pool_size=conf.notification_executor_threads)
    LOG.info(
        "Listening for %s in pool %s%s",
        ", ".join(f"{t.exchange}/{t.topic}" for t in targets_of(plugins)),
        pool,
        f" for cloud {cloud}" if cloud else "",
    )
    while not stop.wait(STATS_INTERVAL):
        send(converter.stats())
    listener.stop()
    listener.wait()
    handoff.flush()  # already empty: the executor threads sent it all before wait() returned
