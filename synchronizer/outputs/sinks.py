"""Sinks: built-in subscribers that send every change somewhere.

Enabled by ``[DEFAULT] sinks``:

``log``      one INFO line per change
``jsonl``    one JSON object per line, appended to ``jsonl_path`` (``-``: stdout)
``message``  an oslo.messaging notification per change on ``message_topic``,
             event type ``entity.<action>``, payload the change's JSON form

Each sink is fed from the store's history by its own feed
(:mod:`synchronizer.dispatch.feed`), on its own thread, with a committed
position: a slow or blocked sink holds up nobody, loses nothing, and after
a restart sends only what it had not sent.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from typing import IO, Any

from oslo_config import cfg

from synchronizer import backend
from synchronizer.errors import ConfigError, Undelivered
from synchronizer.model import Change, Synced

LOG = logging.getLogger(__name__)

Item = Change | Synced


class Sink:
    """A named deliver callable with a ``close()``."""

    name = "sink"

    def __call__(self, item: Item) -> None:
        raise NotImplementedError

    def interrupt(self) -> None:
        """Stop waiting for anything (the daemon is stopping); later items get one try."""

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
            try:
                self._out.close()
            except OSError as exc:
                # A pipe whose reader left: the file is closed all the same, and
                # the lines it still buffered are lost with the reader.
                LOG.warning("jsonl sink: %s closed with lines unwritten: %s", self._out.name, exc)


class MessageSink(Sink):
    """Publishes each change as a notification for out-of-process consumers.

    The message is oslo.messaging's notification (``messagingv2`` format,
    priority ``INFO``, event type ``entity.<action>``, payload the change's
    JSON form), sent through the transport itself rather than through
    ``oslo_messaging.Notifier``: the Notifier swallows a failed send after
    logging the whole payload (server metadata is user data), so the sink
    could neither retry nor keep that payload out of the logs.  Here a send
    that fails is retried, with back-off up to ``RETRY_MAX`` seconds, until
    the broker takes it: a broker outage delays changes and loses none
    (meanwhile they wait in the store's history, behind this sink's
    position: see :mod:`synchronizer.dispatch.feed`), and the log says which
    broker, once per outage, naming keys and reasons only.  ``interrupt()``
    (the daemon stops) makes a failing send raise
    :class:`~synchronizer.errors.Undelivered` instead of retrying: the change
    stays unsent, to go first when the daemon starts again.

    Every payload carries the store's ``epoch`` besides the change; a
    ``bookmark(epoch, seq)`` is published as event type ``entity.bookmark``
    with payload ``{"action": "bookmark", "epoch", "seq"}``: no change, the
    stream's position (consumers that do not resume ignore it).

    Threading: called on its feed's thread; ``interrupt()`` and ``close()``
    from any.
    """

    name = "message"
    RETRY_FIRST = 0.5
    RETRY_MAX = 10.0

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        oslo_messaging = backend.messaging()
        self._transport = oslo_messaging.get_notification_transport(conf)
        self._target = oslo_messaging.Target(topic=f"{conf.message_topic}.info")
        self._publisher = f"synchronizer.{socket.gethostname()}"
        self._broker = broker_address(conf)
        self._closing = threading.Event()
        self.failures = 0
        self.unsent = 0
        self.epoch: str | None = None  # the store's, set by the feed

    def __call__(self, item: Item) -> None:
        if not isinstance(item, Change):
            return
        payload = item.to_dict()
        if self.epoch is not None:
            payload["epoch"] = self.epoch
        what = f"{item.entity.type} {item.entity.key} seq {item.seq}"
        self._publish(f"entity.{item.action}", payload, what, retry=True)

    def bookmark(self, epoch: str, seq: int) -> None:
        """Publish the stream's position (one try: a bookmark is advisory)."""
        payload = {"action": "bookmark", "epoch": epoch, "seq": seq}
        self._publish("entity.bookmark", payload, f"bookmark seq {seq}", retry=False)

    def _publish(self, event_type: str, payload: dict[str, Any], what: str, retry: bool) -> None:
        message = {
            "message_id": str(uuid.uuid4()),
            "publisher_id": self._publisher,
            "event_type": event_type,
            "priority": "INFO",
            "payload": payload,
            "timestamp": str(datetime.datetime.now(datetime.UTC).replace(tzinfo=None)),
        }
        delay = self.RETRY_FIRST
        while True:
            try:
                # retry=0: one attempt; the loop below retries, and interrupt() stops it.
                self._transport._send_notification(self._target, {}, message, 2.0, retry=0)
            except Exception as exc:  # noqa: BLE001 - any failure: wait, retry, never drop
                self._failed(what, exc)
                if self._closing.is_set() or not retry:
                    self.unsent += retry  # stopping: reported by close(), sent at next start
                    raise Undelivered(what) from None
                self._closing.wait(delay)
                delay = min(delay * 2, self.RETRY_MAX)
                continue
            if self.failures:
                LOG.info("Message sink: the broker at %s takes changes again", self._broker)
                self.failures = 0
            return

    def _failed(self, what: str, exc: Exception) -> None:
        self.failures += 1
        if self.failures == 1:
            LOG.warning(
                "Message sink: the broker at %s does not take changes (%s: %s: %s); "
                "they wait and are retried",
                self._broker,
                what,
                type(exc).__name__,
                exc,
            )

    def interrupt(self) -> None:
        self._closing.set()

    def close(self) -> None:
        self._closing.set()
        if self.unsent:
            LOG.warning(
                "Message sink: %d changes were not published (the broker at %s was away "
                "while the daemon stopped); they stay in the state and go first at next start",
                self.unsent,
                self._broker,
            )
        self._transport.cleanup()


def broker_address(conf: cfg.ConfigOpts) -> str:
    """``host:port[, ...]`` of the transport URL, never its credentials."""
    oslo_messaging = backend.messaging()
    try:
        url = oslo_messaging.TransportURL.parse(conf, conf.transport_url)
    except oslo_messaging.InvalidTransportURL:
        return "(invalid transport_url)"
    hosts = [f"{h.hostname}:{h.port}" if h.port else str(h.hostname) for h in url.hosts]
    return ", ".join(hosts) or url.transport or "(default)"


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
