"""Sinks: built-in subscribers that send every change somewhere.

Enabled by ``[DEFAULT] sinks``:

``log``      one INFO line per change
``jsonl``    one JSON object per line, appended to ``jsonl_path`` (``-``: stdout)
``message``  an oslo.messaging notification per change on ``message_topic``,
             event type ``entity.<action>``, payload the change's JSON form

Each sink runs as a subscription of every type (no initial snapshot), so a
slow sink has its own thread and coalescing queue like any subscriber.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from oslo_config import cfg

from synchronizer import backend
from synchronizer.errors import ConfigError
from synchronizer.model import Change, Synced

LOG = logging.getLogger(__name__)

Item = Change | Synced


class Sink:
    """A named deliver callable with a ``close()``."""

    name = "sink"

    def __call__(self, item: Item) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the sink holds."""


class LogSink(Sink):
    name = "log"

    def __call__(self, item: Item) -> None:
        if isinstance(item, Change):
            LOG.info(
                "%s %s %s state=%s seq=%d",
                item.action,
                item.entity.type,
                item.entity.key,
                item.entity.state,
                item.seq,
            )


class JsonlSink(Sink):
    """JSON lines; each line is flushed so a pipe reader sees it at once."""

    name = "jsonl"

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._own = path != "-"
        self._out: IO[bytes] = open(path, "ab") if self._own else sys.stdout.buffer  # noqa: SIM115

    def __call__(self, item: Item) -> None:
        if isinstance(item, Change):
            with self._lock:
                self._out.write(item.to_json() + b"\n")
                self._out.flush()

    def close(self) -> None:
        if self._own:
            try:
                self._out.close()
            except OSError as exc:
                # A pipe whose reader left: the file is closed all the same, and
                # the lines it still buffered are lost with the reader.
                LOG.warning("jsonl sink: %s closed with lines unwritten: %s", self._out.name, exc)


class MessageSink(Sink):
    """Publishes each change as a notification for out-of-process consumers."""

    name = "message"

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        oslo_messaging = backend.messaging()
        transport = oslo_messaging.get_notification_transport(conf)
        self._notifier = oslo_messaging.Notifier(
            transport,
            publisher_id=f"synchronizer.{socket.gethostname()}",
            driver="messagingv2",
            topics=[conf.message_topic],
        )

    def __call__(self, item: Item) -> None:
        if isinstance(item, Change):
            self._notifier.info({}, f"entity.{item.action}", item.to_dict())


def build(conf: cfg.ConfigOpts) -> list[Sink]:
    """The sinks named in ``[DEFAULT] sinks``; an unknown name is a ConfigError."""
    makers: dict[str, Callable[[], Any]] = {
        "log": LogSink,
        "jsonl": lambda: JsonlSink(conf.jsonl_path),
        "message": lambda: MessageSink(conf),
    }
    sinks = []
    for name in conf.sinks:
        if name not in makers:
            raise ConfigError(
                f"[DEFAULT] sinks: unknown sink {name!r} (choose from {', '.join(makers)})"
            )
        sinks.append(makers[name]())
    return sinks
