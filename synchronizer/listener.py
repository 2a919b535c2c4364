"""The notification worker: one oslo.messaging listener for every push plugin.

All notification plugins share one worker process running one notification
listener (threading executor) on the union of their ``(exchange, topic)``
targets, in its own **pool** (``[DEFAULT] notification_pool``): the pool is
the queue name suffix, so the worker gets its own copy of every message and
steals nothing from other consumers of the same topics.  Each message goes
through :class:`~synchronizer.notifications.Converter`, alone: a bad one
is counted and dropped and the others go on.  The listener is oslo.messaging's
*batch* notification listener: it takes up to ``notification_batch_size``
messages at a time, waiting at most ``notification_batch_timeout`` for a
batch to fill, and the changes of a batch cross to the dispatcher in one
hand-off (chunked), so a backlog drains at the broker's pace while an idle
bus adds at most the timeout to a notification's latency.  Every message is
acknowledged, bad ones included: nothing is requeued forever.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import oslo_messaging
from oslo_config import cfg

from synchronizer import loader, protocol
from synchronizer.exceptions import PluginLoadError, PluginUnavailable
from synchronizer.notifications import Converter
from synchronizer.plugin import NotificationPlugin
from synchronizer.worker import EXIT_PERMANENT, prepare_child

LOG = logging.getLogger(__name__)

WORKER_NAME = "notifications"
STATS_INTERVAL = 2.0


class Endpoint:
    """oslo.messaging endpoint: every priority goes to one handler (one message a call)."""

    def __init__(self, converter: Converter, emit: Callable[[list[Any]], None]) -> None:
        self.converter = converter
        self.emit = emit

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

    def _handle(self, priority: str, publisher_id: str, event_type: str, payload: Any, md: Any):
        changes = self.convert(priority, publisher_id, event_type, payload, md)
        if changes:
            self.emit(changes)
        return oslo_messaging.NotificationResult.HANDLED

    def audit(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle("audit", publisher_id, event_type, payload, metadata)

    def debug(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle("debug", publisher_id, event_type, payload, metadata)

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle("info", publisher_id, event_type, payload, metadata)

    def warn(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle("warn", publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle("error", publisher_id, event_type, payload, metadata)

    def critical(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle("critical", publisher_id, event_type, payload, metadata)

    def sample(self, ctxt, publisher_id, event_type, payload, metadata):
        return self._handle("sample", publisher_id, event_type, payload, metadata)


class BatchEndpoint:
    """Endpoint of the batch listener: each message converted alone, one hand-off.

    oslo.messaging hands over up to ``notification_batch_size`` messages at
    a time; each goes through the :class:`Endpoint` conversion on its own (a
    bad one is counted and dropped, the others go on), and the changes of
    the whole batch cross to the dispatcher together, in chunks.  Every
    message of the batch is acknowledged afterwards, whatever it held.
    """

    def __init__(self, converter: Converter, emit: Callable[[list[Any]], None]) -> None:
        self.one = Endpoint(converter, emit)
        self.emit = emit

    def _handle(self, priority: str, messages: list[dict[str, Any]]):
        changes: list[Any] = []
        for message in messages:
            try:
                changes.extend(
                    self.one.convert(
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
        return oslo_messaging.NotificationResult.HANDLED

    def audit(self, messages):
        return self._handle("audit", messages)

    def debug(self, messages):
        return self._handle("debug", messages)

    def info(self, messages):
        return self._handle("info", messages)

    def warn(self, messages):
        return self._handle("warn", messages)

    def error(self, messages):
        return self._handle("error", messages)

    def critical(self, messages):
        return self._handle("critical", messages)

    def sample(self, messages):
        return self._handle("sample", messages)


def load_plugins(
    conf: cfg.ConfigOpts, names: list[str], report: Callable[[str, str, str], None]
) -> list[NotificationPlugin]:
    """Instantiate the named notification plugins, reporting each failure."""
    plugins = []
    for name in names:
        try:
            plugin = loader.instantiate(conf, name)
        except (PluginLoadError, PluginUnavailable) as exc:
            LOG.error("%s", exc)
            state = "unavailable" if isinstance(exc, PluginUnavailable) else "failed"
            report(name, state, str(exc))
            continue
        if not isinstance(plugin, NotificationPlugin):
            report(name, "failed", f"plugin {name!r} is not a notification plugin")
            continue
        report(name, "running", "")
        plugins.append(plugin)
    return plugins


def targets_of(plugins: list[NotificationPlugin]) -> list[oslo_messaging.Target]:
    """The distinct (exchange, topic) targets the plugins listen on."""
    pairs = sorted({(p.exchange, t) for p in plugins for t in p.topics})
    return [oslo_messaging.Target(exchange=ex, topic=topic) for ex, topic in pairs]


def build_listener(
    conf: cfg.ConfigOpts, plugins: list[NotificationPlugin], endpoint: BatchEndpoint
) -> oslo_messaging.MessageHandlingServer:
    """The batch notification listener of the worker (see the module docstring)."""
    transport = oslo_messaging.get_notification_transport(conf)
    return oslo_messaging.get_batch_notification_listener(
        transport,
        targets_of(plugins),
        [endpoint],
        executor="threading",
        pool=conf.notification_pool,
        allow_requeue=False,
        batch_size=conf.notification_batch_size,
        batch_timeout=conf.notification_batch_timeout,
    )


def notification_main(
    conf_args: list[str], names: list[str], chunk_size: int, conn: Connection
) -> None:
    """Entry point of the notification worker process (multiprocessing target)."""
    conf, stop = prepare_child(conf_args)
    conf.set_override("executor_thread_pool_size", conf.notification_executor_threads)
    lock = threading.Lock()

    def send(msg: protocol.Message) -> None:
        with lock:
            conn.send(msg)

    def report(name: str, state: str, reason: str) -> None:
        send((protocol.STATUS, name, {"plugin": name, "state": state, "reason": reason}))

    plugins = load_plugins(conf, names, report)
    if not plugins:
        raise SystemExit(EXIT_PERMANENT)
    converter = Converter(plugins, conf.notification_max_bytes)

    def emit(changes: list[Any]) -> None:
        for chunk in protocol.chunked(changes, chunk_size):
            send((protocol.CHANGES, WORKER_NAME, protocol.encode(chunk)))

    listener = build_listener(conf, plugins, BatchEndpoint(converter, emit))
    listener.start()
    LOG.info(
        "Listening for %s in pool %s",
        ", ".join(f"{t.exchange}/{t.topic}" for t in targets_of(plugins)),
        conf.notification_pool,
    )
    while not stop.wait(STATS_INTERVAL):
        send((protocol.STATS, WORKER_NAME, _stats(converter)))
    listener.stop()
    listener.wait()


def _stats(converter: Converter) -> dict[str, Any]:
    return {
        "counts": dict(converter.counts),
        "by_event": [[*k, v] for k, v in converter.by_event.items()],
    }
