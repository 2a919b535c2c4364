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
import os
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
    """JSON lines; each line is flushed so a pipe reader sees it at once.

    On standard output (``-``), a reader that goes away (``| head``, a
    ``jq`` that exits) ends the sink quietly: standard output is pointed at
    ``/dev/null`` (so nothing complains at exit), one line is logged, and
    ``on_closed`` is called (the daemon stops, as a filter whose output is
    gone does).  A file that cannot be written is logged and retried on the
    next change.
    """

    name = "jsonl"

    def __init__(self, path: str, on_closed: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._own = path != "-"
        self._out: IO[bytes] = open(path, "ab") if self._own else sys.stdout.buffer  # noqa: SIM115
        self._on_closed = on_closed
        self.closed = False

    def __call__(self, item: Item) -> None:
        if not isinstance(item, Change):
            return
        with self._lock:
            if self.closed:
                return
            try:
                self._out.write(item.to_json() + b"\n")
                self._out.flush()
            except BrokenPipeError:
                if self._own:
                    raise
                self._stdout_gone()

    def _stdout_gone(self) -> None:
        self.closed = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._out.fileno())
        os.close(devnull)
        LOG.info("Standard output was closed; the jsonl sink stops")
        if self._on_closed is not None:
            self._on_closed()

    def close(self) -> None:
        if self._own:
            self._out.close()


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


def build(conf: cfg.ConfigOpts, on_output_closed: Callable[[], None] | None = None) -> list[Sink]:
    """The sinks named in ``[DEFAULT] sinks``; an unknown name is a ConfigError.

    ``on_output_closed`` is called when the jsonl sink's standard output
    is closed by its reader.
    """
    makers: dict[str, Callable[[], Any]] = {
        "log": LogSink,
        "jsonl": lambda: JsonlSink(conf.jsonl_path, on_output_closed),
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
