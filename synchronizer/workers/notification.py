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
is counted and dropped and the others go on.  A bad message is
acknowledged at once: nothing is requeued for what it holds, only for
what the main process could not commit (below).

By default (``notification_batch_size`` > 1) the listener is
oslo.messaging's *batch* listener (:class:`BatchEndpoint`): a call takes
the messages the bus has (up to the size, waiting at most
``notification_batch_timeout`` for more) and waits once for the commit of
all their changes.  With ``notification_batch_size = 1`` it is the plain
listener, one message a call (:class:`Endpoint`): nothing waits for a
batch, but every message holds an executor thread for its own round trip
to the main process, which on 2 cores saturates the worker at about
1,000 notifications a second.

Either way the changes cross to the dispatcher through one
:class:`Handoff`: the endpoint that finds it idle sends, the others only
append while that send is in flight.  Batching is therefore natural: a lone
notification goes out at once on the thread that converted it, and under
load what arrives during a send goes out with the next chunk.

**A notification is acknowledged to the bus only once the main process has
committed its changes** (at-least-once): each chunk asks for an answer
(``Changes.through``), the main process answers ``Committed`` after its
store committed the chunk, and the endpoint waits for that answer
(:class:`Commits`) before it returns.  A chunk the main process could not
commit, a main process that died (its pipe ended), a worker stopped before
its answers came (``STOP_WAIT``) or an answer that never came
(``ANSWER_WAIT``) gives the message back to the bus (``requeue``), and the
daemon gets it again: a crash of either process, or a fleet member that
loses its partition, loses nothing the bus had delivered.  What comes back
may repeat a change already committed; the dispatcher's ledger drops such
a repeat (same fingerprint, or an older state).  A message that gives no
change (bad, or of no interest) is acknowledged at once.

Waiting endpoints do not hold the interpreter: with several executor
threads (``notification_executor_threads``) the next messages are
converted while the first wait, and their changes cross in the next chunk.

::

    commits = Commits()
    handoff = Handoff(send_chunk, chunk_size=1000)   # send_chunk(chunk, start, through)
    server = build_listener(conf, plugins, converter, handoff.put, confirm=commits.wait)
    server.start(override_pool_size=conf.notification_executor_threads)
    ...                                              # commits.answer(Committed) as answers come
    server.stop()
    commits.close_after(STOP_WAIT)
    server.wait()     # every consumed message acknowledged or given back
"""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import logging
import os
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
ANSWER_WAIT = 30.0  # the longest an endpoint waits for the commit of its changes
STOP_WAIT = 1.0  # once the worker stops: how long answers are still waited for
REFUSED_KEPT = 1024  # chunks refused, remembered for the endpoints still waiting


class Commits:
    """Which of the changes handed on the main process has committed.

    Positions count the changes the worker handed on (``Handoff.put``
    returns the position through a put's changes); a chunk covers
    ``(start, through]``.  :meth:`answer` takes the main process's
    ``Committed`` answers, which come in chunk order; an answer also settles
    every earlier chunk still unanswered (its answer was dropped), as
    refused: nothing is acknowledged that is not known committed.
    :meth:`wait` blocks until the changes ``(start, through]`` are settled
    and says whether all of them were committed.

    Threading: every method from any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answered = 0  # every chunk through this position is settled
        self._inflight: dict[int, int] = {}  # a chunk's through → its start
        self._refused: collections.deque[tuple[int, int]] = collections.deque(maxlen=REFUSED_KEPT)
        # Waits, by the position they wait for: an answer wakes only those it
        # settles (not every executor thread at every answer).
        self._waiting: list[tuple[int, int, threading.Event]] = []
        self._tickets = itertools.count()
        self._closed = False

    def sent(self, start: int, through: int) -> None:
        """A chunk ``(start, through]`` went to the main process."""
        with self._lock:
            self._inflight[through] = start

    def answer(self, reply: wire.Committed) -> None:
        with self._lock:
            for through in [t for t in self._inflight if t <= reply.through]:
                start = self._inflight.pop(through)
                if through < reply.through or not reply.ok:
                    self._refused.append((start, through))
            self._answered = max(self._answered, reply.through)
            waiting = self._waiting
            while waiting and waiting[0][0] <= self._answered:
                heapq.heappop(waiting)[2].set()

    def close(self) -> None:
        """No answer will come any more (the pipe ended): every wait ends, refused."""
        with self._lock:
            self._closed = True
            waiting, self._waiting = self._waiting, []
        for _, _, settled in waiting:
            settled.set()

    def close_after(self, seconds: float) -> None:
        """:meth:`close` in ``seconds`` (the worker stops: answers due now still come)."""
        timer = threading.Timer(seconds, self.close)
        timer.daemon = True
        timer.start()

    def wait(self, start: int, through: int, timeout: float = ANSWER_WAIT) -> bool:
        """Whether the changes ``(start, through]`` were committed (False: not, or unknown)."""
        with self._lock:
            if self._answered < through and not self._closed:
                settled = threading.Event()
                heapq.heappush(self._waiting, (through, next(self._tickets), settled))
            else:
                settled = None
        if settled is not None:
            settled.wait(timeout)
        with self._lock:
            if self._answered < through:
                return False  # closed, or timed out (its entry goes with a later answer)
            return not any(s < through and start < t for s, t in self._refused)


class Handoff:
    """Hands changes on in chunks; whoever finds it idle sends for everyone.

    ``put()`` appends to a buffer.  If no send is in progress, the calling
    thread becomes the sender: it sends everything buffered as chunks of at
    most ``chunk_size`` through ``send_chunk``, then whatever other threads
    put meanwhile, until the buffer is empty.  A quiet bus therefore sends
    each change at once, on the thread that converted it (no timer, no
    thread switch); a busy one pays one encode and one pipe write per chunk
    instead of per message.  Changes keep their ``put()`` order.

    A ``put()`` that finds a send in progress returns at once; its message
    is acknowledged only once the main process has committed the changes
    (the endpoint waits on :class:`Commits`).  When the worker stops, the
    listener's ``wait()`` waits for the executor threads, and the thread
    that sends does not return before the buffer is empty (:meth:`flush`
    waits for that too).  A worker killed outright (``SIGKILL``) leaves its
    unacknowledged messages to the broker, which delivers them again.

    ``put()`` returns the position through its changes (the count of
    changes put so far), and ``send_chunk(chunk, start, through)`` gets the
    positions its chunk covers, ``(start, through]``: what the worker waits
    to hear committed (:class:`Commits`) before it acknowledges.

    A ``send_chunk`` that raises is logged and its chunk dropped (the pipe
    is gone: the worker is on its way out); the others are still tried.

    Threading: ``put()`` and ``flush()`` from any thread.
    """

    def __init__(self, send_chunk: Callable[[list[Any], int, int], None], chunk_size: int) -> None:
        self.send_chunk = send_chunk
        self.chunk_size = chunk_size
        self._buffer: list[Any] = []
        self._put = 0  # changes put so far
        self._sent = 0  # changes handed to send_chunk so far (by the sending thread)
        self._sending = False
        self._cond = threading.Condition()

    def put(self, changes: list[Any]) -> int:
        """Hand ``changes`` on; the position through them."""
        with self._cond:
            self._buffer.extend(changes)
            self._put += len(changes)
            through = self._put
            if self._sending:
                return through
            self._sending = True
        self._send_all()
        return through

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
                start = self._sent
                self._sent += len(chunk)
                try:
                    self.send_chunk(chunk, start, self._sent)
                except Exception:  # the pipe is gone; the worker is stopping
                    LOG.exception("Notification worker could not hand %d changes on", len(chunk))


HANDLED = "handled"  # oslo_messaging.NotificationResult.HANDLED: acknowledge
REQUEUE = "requeue"  # oslo_messaging.NotificationResult.REQUEUE: give back to the bus

Confirm = Callable[[int, int], bool]  # (start, through) → committed (Commits.wait)


def _priorities() -> tuple[str, ...]:
    """oslo.messaging's notification priorities (``audit`` ... ``sample``)."""
    return tuple(backend.messaging().notify.dispatcher.PRIORITIES)


class Endpoint:
    """Endpoint of the plain listener: one message a call, every priority alike.

    oslo.messaging calls an endpoint's method named after the message's
    priority; this endpoint has one for each of oslo.messaging's priorities
    (set per instance from its list, not written out by hand), all handled
    alike.  The message's changes go to ``emit``; bad input is counted by
    the converter and gives none.  With ``confirm``, ``emit`` returns the
    position through the changes (``Handoff.put``) and the message is
    acknowledged only if ``confirm(start, through)`` says they were
    committed; otherwise it goes back to the bus.  Threading: called on the
    executor's threads.
    """

    _HANDLER = "_on_message"  # the method every priority's method calls

    def __init__(
        self,
        converter: Converter,
        emit: Callable[[list[Any]], Any],
        priorities: Sequence[str] | None = None,
        confirm: Confirm | None = None,
    ) -> None:
        self.converter = converter
        self.emit = emit
        self.confirm = confirm
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
        return self._hand_on(changes)

    def _hand_on(self, changes: list[Any]) -> str:
        """Emit ``changes``; HANDLED once they are committed (or with nothing to wait for)."""
        if not changes:
            return HANDLED
        through = self.emit(changes)
        if self.confirm is None or self.confirm(through - len(changes), through):
            return HANDLED
        return REQUEUE


class BatchEndpoint(Endpoint):
    """Endpoint of the batch listener: each message converted alone, one hand-off.

    oslo.messaging hands over up to ``notification_batch_size`` messages at
    a time, to a method named after their priority (one per priority, as in
    :class:`Endpoint`); each goes through the :class:`Endpoint` conversion
    on its own (a bad one is counted and dropped, the others go on), and the
    changes of the whole batch go to ``emit`` together.  Every message of
    the batch is acknowledged afterwards, whatever it held, once the
    batch's changes are committed (with ``confirm``; else the whole batch
    goes back to the bus).
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
        return self._hand_on(changes)


def targets_of(plugins: list[NotificationPlugin]) -> list[oslo_messaging.Target]:
    """The distinct (exchange, topic) targets the plugins listen on."""
    pairs = sorted({(p.exchange, t) for p in plugins for t in p.topics})
    oslo_messaging = backend.messaging()
    return [oslo_messaging.Target(exchange=ex, topic=topic) for ex, topic in pairs]


def build_listener(
    conf: cfg.ConfigOpts,
    plugins: list[NotificationPlugin],
    converter: Converter,
    emit: Callable[[list[Any]], Any],
    url: str | None = None,
    pool: str | None = None,
    confirm: Confirm | None = None,
) -> oslo_messaging.MessageHandlingServer:
    """The worker's listener: plain, or batch when ``notification_batch_size`` > 1.

    ``url`` is the bus of the plugins' cloud (None: the configured transport),
    ``pool`` its listener pool (None: ``notification_pool``); ``confirm``:
    see :class:`Endpoint` (a message it refuses is requeued).
    """
    oslo_messaging = backend.messaging()
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    common: dict[str, Any] = {
        "executor": "threading",
        "pool": pool or conf.notification_pool,
        "allow_requeue": True,  # what the main process did not commit goes back
    }
    if conf.notification_batch_size <= 1:
        return oslo_messaging.get_notification_listener(
            transport, targets_of(plugins), [Endpoint(converter, emit, confirm=confirm)], **common
        )
    return oslo_messaging.get_batch_notification_listener(
        transport,
        targets_of(plugins),
        [BatchEndpoint(converter, emit, confirm=confirm)],
        batch_size=conf.notification_batch_size,
        batch_timeout=conf.notification_batch_timeout,
        **common,
    )


def _chunk_sender(
    send: Callable[[wire.Message], None], commits: Commits
) -> Callable[[list[Any], int, int], None]:
    """``Handoff``'s ``send_chunk``: a chunk that asks for an answer; a failed send is refused."""
    pid = os.getpid()

    def send_chunk(chunk: list[Any], start: int, through: int) -> None:
        commits.sent(start, through)
        try:
            send(wire.Changes.of(chunk, through, pid))
        except Exception:
            commits.answer(wire.Committed(through, ok=False))
            raise

    return send_chunk


def _read_answers(conn: Connection, commits: Commits, stop: threading.Event) -> None:
    """The main process's answers, until its end of the pipe is gone: then the worker stops."""
    while True:
        try:
            reply = conn.recv()
        except (EOFError, OSError):
            commits.close()
            stop.set()
            return
        except Exception:  # an answer that does not unpickle: the pipe's framing holds
            LOG.exception("Unreadable answer from the main process; ignored")
            continue
        if isinstance(reply, wire.Committed):
            commits.answer(reply)


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

    commits = Commits()
    send_chunk = _chunk_sender(send, commits)
    handoff = Handoff(send_chunk, chunk_size)
    url = clouds.transport_url(conf, cloud)
    listener = build_listener(
        conf, plugins, converter, handoff.put, url, pool, confirm=commits.wait
    )
    threading.Thread(
        target=_read_answers, args=(conn, commits, stop), name="answers", daemon=True
    ).start()
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
    commits.close_after(STOP_WAIT)  # a draining main process answers within it
    listener.wait()
    handoff.flush()  # already empty: the executor threads sent it all before wait() returned
