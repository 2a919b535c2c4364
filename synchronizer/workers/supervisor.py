"""Supervision of the worker processes, and the one reader of their pipes.

The supervisor starts each worker (a collector, or the notification
worker) in a fresh interpreter (``spawn``: forking a process that already
runs threads and broker connections is unsafe), reads every worker's pipe
on one thread, and hands each message (a :data:`~synchronizer.wire.Message`)
to ``on_message`` with the worker's name.  A worker that dies is restarted
after a delay that doubles from ``restart_delay`` up to
``restart_max_delay`` (reset once it has lived a minute), and
``on_restart`` hears of it; one that exits with ``EXIT_PERMANENT`` (its
plugin failed to load or is disabled) stays down until the next reload.

A worker may also be kept on *standby* (``ensure(specs, standby=...)``):
started and prepared (its interpreter, its configuration, its plugin
loaded) but waiting at its gate, doing nothing, until a later ``ensure``
wants it running; it then starts at once, without the second or so a
fresh interpreter takes.  A fleet member keeps the workers of the
partitions it does not own so, for a failover.  A worker that ran is
never put back on standby: it is replaced by a fresh one.

A worker stopped by ``ensure(..., drain=True)`` is read to the end of its
pipe before it is let go: what it sent while stopping (a notification
worker's last batch, flushed once its listener stopped) still reaches
``on_message`` under its name, and :meth:`Supervisor.wait_drained` tells
when all of it has.  A fleet member that hands a partition over drains
its workers so; otherwise a stopped worker's pipe is closed unread.

The pipes are duplex: :meth:`Supervisor.answer` sends a worker the main
process's answer to a chunk that asked for one (the notification worker
acknowledges its notifications to the bus only once their changes are
committed).

Threading: ``ensure()``, ``stop()`` and ``answer()`` may be called from any
thread; the reader thread owns the pipes (it alone reads them; pipes are
closed under the supervisor's lock, which ``answer()`` sends under).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from synchronizer import wire
from synchronizer.workers.process import EXIT_PERMANENT

if TYPE_CHECKING:
    from synchronizer.wire import Message

LOG = logging.getLogger(__name__)

HEALTHY_AFTER = 60.0
DRAIN_WAIT = 5.0  # the longest a draining worker is waited for, then killed
STOPPED_GRACE = 5.0  # a worker stopped by a signal waits this long for the daemon's stop


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What to run: a target function, its arguments, and a digest of its config.

    A spec whose digest changes on reload is restarted; others are left alone.
    """

    name: str
    target: Callable[..., None]
    args: tuple[Any, ...]
    digest: str
    #: The target takes ``gate=`` (a :class:`GateEnd`, None once open) and may be kept on standby.
    gated: bool = False


class Gate:
    """What a worker on standby waits at: opened by the supervisor, seen in the worker.

    A pipe, not a :class:`multiprocessing.Event`: a worker killed while it
    waits on an event's condition leaves it broken for the next ``set()``;
    a pipe's writer never waits for its reader.  A worker spawned once the
    gate is open gets no gate (it runs at once).
    """

    def __init__(self, ctx: Any) -> None:
        self._reader, self._writer = ctx.Pipe(duplex=False)
        self.opened = False

    def open(self) -> None:
        if not self.opened:
            self.opened = True
            self._writer.send_bytes(b"go")

    def for_child(self) -> GateEnd | None:
        return None if self.opened else GateEnd(self._reader)

    def close(self) -> None:
        self._reader.close()
        self._writer.close()


class GateEnd:
    """The worker's end of its :class:`Gate`."""

    def __init__(self, reader: Connection) -> None:
        self._reader = reader

    def wait(self, stop: threading.Event, poll: float = 0.05) -> bool:
        """Block until the gate opens (True) or ``stop`` is set (False)."""
        while not self._reader.poll(poll):
            if stop.is_set():
                return False
        return not stop.is_set()


@dataclasses.dataclass
class _Worker:
    spec: WorkerSpec
    process: Any = None
    conn: Connection | None = None
    started: float = 0.0
    delay: float = 0.0
    restart_at: float | None = None
    permanent: bool = False
    gate: Gate | None = None

    @property
    def on_standby(self) -> bool:
        return self.gate is not None and not self.gate.opened


@dataclasses.dataclass
class _Drain:
    """A stopped worker whose pipe is read to its end, then closed (with its gate)."""

    name: str
    process: Any
    conn: Connection
    gate: Gate | None
    deadline: float


def _pid(worker: _Worker) -> int | None:
    return worker.process.pid if worker.process is not None else None


class Supervisor:
    """Runs and restarts worker processes; forwards their messages."""

    def __init__(
        self,
        on_message: Callable[[str, Message], None],
        *,
        restart_delay: float = 1.0,
        restart_max_delay: float = 60.0,
        stopped_grace: float = STOPPED_GRACE,
        on_restart: Callable[[str], None] | None = None,
    ) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._on_message = on_message
        self._on_restart = on_restart or (lambda name: None)
        self.restart_delay = restart_delay
        self.restart_max_delay = restart_max_delay
        self.stopped_grace = stopped_grace
        self._workers: dict[str, _Worker] = {}
        self._retired: list[Connection] = []  # pipes of reaped workers, for the reader to close
        self._draining: list[_Drain] = []
        self._lock = threading.RLock()
        self._drained = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name="supervisor", daemon=True)

    # -- public -----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def ensure(
        self, specs: list[WorkerSpec], standby: list[WorkerSpec] = (), *, drain: bool = False
    ) -> None:
        """Make the workers match: ``specs`` running, ``standby`` started and waiting.

        Start, stop and restart changed ones; a worker on standby that
        ``specs`` now wants is let through its gate at once; one that ran
        and is now wanted on standby is replaced by a fresh one.  With
        ``drain``, the workers stopped are read until their pipes end (see
        :meth:`wait_drained`) rather than closed unread.
        """
        wanted = {s.name: s for s in specs}
        waiting = {s.name: s for s in standby if s.gated and s.name not in wanted}
        with self._lock:
            for name in list(self._workers):
                worker = self._workers[name]
                spec = wanted.get(name) or waiting.get(name)
                if spec is None:
                    why = "removed"
                elif spec.digest != worker.spec.digest or worker.permanent:
                    why = "reconfigured"
                elif name in waiting and not worker.on_standby:
                    why = "put back on standby: replaced by a fresh one"
                else:
                    continue
                LOG.info("Stopping worker %s (%s)", name, why)
                if drain and worker.conn is not None and not worker.on_standby:
                    self._drain(worker)
                else:
                    self._terminate(worker)
                del self._workers[name]
            for name, spec in {**waiting, **wanted}.items():
                worker = self._workers.get(name)
                if worker is None:
                    gate = Gate(self._ctx) if spec.gated else None
                    worker = _Worker(spec, delay=self.restart_delay, gate=gate)
                    self._workers[name] = worker
                    if name in wanted and gate is not None:
                        gate.open()
                    self._spawn(worker)
                elif name in wanted and worker.on_standby:
                    worker.gate.open()  # type: ignore[union-attr]
                    LOG.info("Worker %s (pid %s) taken off standby", name, _pid(worker))

    def answer(self, name: str, sender: int, reply: wire.Committed) -> None:
        """Send ``reply`` to worker ``name`` if it is still the process ``sender``.

        Running or draining; a worker restarted since (another pid) gets
        nothing.  Never blocks: a worker whose pipe has no room (stopped,
        or not reading) gets nothing either, and gives the notifications
        it waited for back to the bus when its wait ends.
        """
        with self._lock:  # pipes are closed under it: none closes under the send
            worker = self._workers.get(name)
            if worker is not None and worker.conn is not None and _pid(worker) == sender:
                conn = worker.conn
            else:
                conn = next(
                    (d.conn for d in self._draining if d.name == name and d.process.pid == sender),
                    None,
                )
            if conn is None:
                return
            try:
                if select.select([], [conn], [], 0)[1]:
                    conn.send(reply)
                else:
                    LOG.debug("Worker %s is not reading its pipe; answer dropped", name)
            except (OSError, ValueError) as exc:  # the pipe ended meanwhile
                LOG.debug("Could not answer worker %s: %s", name, exc)

    @contextlib.contextmanager
    def answering(self, name: str, message: wire.Changes) -> Iterator[None]:
        """Answer a chunk that asks for it: committed when the block ends, refused if it raised.

        The block dispatches the chunk (its changes are committed before
        dispatch returns); the notification worker acknowledges the chunk's
        notifications to the bus on that answer, or gives them back.
        """
        try:
            yield
        except BaseException:
            self.refuse(name, message)
            raise
        if message.through:
            self.answer(name, message.sender, wire.Committed(message.through))

    def refuse(self, name: str, message: wire.Message) -> None:
        """Answer a chunk that asks for it as not committed (it is dropped unread)."""
        if isinstance(message, wire.Changes) and message.through:
            self.answer(name, message.sender, wire.Committed(message.through, ok=False))

    def wait_drained(self, timeout: float) -> bool:
        """Wait until every draining worker's pipe was read to its end; False on timeout."""
        with self._drained:
            return self._drained.wait_for(lambda: not self._draining, timeout)

    def stop(self, timeout: float = 5.0, *, drain: bool = False) -> None:
        """Stop every worker within about ``timeout`` (killing those that do not stop).

        With ``drain``, the workers are first stopped as ``ensure(...,
        drain=True)`` stops them, and what they send while stopping is read
        and handed on (for up to ``timeout``): a daemon that stops loses
        nothing its notification worker had taken from the bus.
        """
        if drain and self._thread.is_alive():
            started = time.monotonic()
            self._drain_all(timeout)
            timeout = max(0.5, timeout - (time.monotonic() - started))
        self._stopping.set()
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
            drains, self._draining = self._draining, []
        for worker in workers:
            if worker.process is not None and worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + timeout
        for worker in workers:
            self._reap(worker, max(0.0, deadline - time.monotonic()))
            if worker.gate is not None:
                worker.gate.close()
        _finish(drains, deadline)  # stopped already: what they still send is not waited for
        if self._thread.is_alive():  # not when the daemon failed before starting it
            self._thread.join(timeout)
        with self._lock:
            self._close_retired()
            for drain in drains:
                drain.conn.close()
                if drain.gate is not None:
                    drain.gate.close()

    # -- internals --------------------------------------------------------

    def _drain_all(self, timeout: float) -> None:
        with self._lock:
            for name, worker in list(self._workers.items()):
                if worker.conn is not None and not worker.on_standby:
                    LOG.info("Stopping worker %s (the daemon stops)", name)
                    self._drain(worker)
                    del self._workers[name]
        if not self.wait_drained(timeout):
            LOG.warning("Not every worker stopped in %.1f s; the rest are killed", timeout)

    def _spawn(self, worker: _Worker) -> None:
        # Duplex: the main process answers the notification worker's chunks on it.
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=worker.spec.target,
            args=(*worker.spec.args, child),
            kwargs={"gate": worker.gate.for_child()} if worker.gate is not None else {},
            name=f"synchronizer-{worker.spec.name}",
            daemon=False,
        )
        process.start()
        child.close()
        worker.process, worker.conn = process, parent
        worker.started, worker.restart_at = time.monotonic(), None
        LOG.info(
            "Started worker %s (pid %s)%s",
            worker.spec.name,
            process.pid,
            " on standby" if worker.on_standby else "",
        )

    def _terminate(self, worker: _Worker) -> None:
        if worker.process is not None and worker.process.is_alive():
            worker.process.terminate()
        self._reap(worker, 5.0)
        if worker.gate is not None:
            worker.gate.close()

    def _drain(self, worker: _Worker) -> None:
        """SIGTERM ``worker`` and leave its pipe to the reader until it ends."""
        if worker.process.is_alive():
            worker.process.terminate()
        deadline = time.monotonic() + DRAIN_WAIT
        self._draining.append(
            _Drain(worker.spec.name, worker.process, worker.conn, worker.gate, deadline)
        )
        worker.process, worker.conn, worker.gate = None, None, None

    def _end_drain(self, drain: _Drain, how: str) -> None:
        drain.process.join(1.0)
        if drain.process.is_alive():
            drain.process.kill()
            drain.process.join(1.0)
        with self._lock:  # on the reader's thread, which alone reads it; answer() sends
            drain.conn.close()
        if drain.gate is not None:
            drain.gate.close()  # the process is gone: it cannot take the gate's end for "go"
        LOG.info("Worker %s (pid %s) stopped: %s", drain.name, drain.process.pid, how)
        with self._drained:
            if drain in self._draining:
                self._draining.remove(drain)
            self._drained.notify_all()

    def _reap(self, worker: _Worker, timeout: float) -> None:
        if worker.process is None:
            return
        worker.process.join(timeout)
        if worker.process.is_alive():
            LOG.warning("Worker %s did not stop in time; killing it", worker.spec.name)
            worker.process.kill()
            worker.process.join(1.0)
        if worker.conn is not None:
            # Not closed here: the reader thread may be reading it right now, and
            # a closed descriptor's number is soon reused by the next worker's pipe.
            self._retired.append(worker.conn)
        worker.process, worker.conn = None, None

    def _close_retired(self) -> None:
        for conn in self._retired:
            conn.close()
        self._retired.clear()

    def _read_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                self._close_retired()  # the reader owns the pipes: none is in use now
                conns = {w.conn: w for w in self._workers.values() if w.conn is not None}
                drains = {d.conn: d for d in self._draining}
            now = time.monotonic()
            for drain in [d for d in drains.values() if d.deadline <= now]:
                del drains[drain.conn]
                LOG.warning("Worker %s did not stop in time; killing it", drain.name)
                self._end_drain(drain, f"killed after {DRAIN_WAIT:.0f} s")
            if not conns and not drains:
                self._stopping.wait(0.2)
            else:
                for conn in wait([*conns, *drains], timeout=0.2):
                    if conn in drains:
                        self._read_drain(drains[conn])
                    else:
                        self._read(conns[conn], conn)
            self._restart_due()

    def _read(self, worker: _Worker, conn: Connection) -> None:
        # ``conn``, not ``worker.conn``: stop() or a reload may have reaped the
        # worker since the loop looked (its pipe stays open until the loop closes it).
        self._read_from(worker.spec.name, conn, lambda: self._on_exit(worker))

    def _read_drain(self, drain: _Drain) -> None:
        self._read_from(
            drain.name, drain.conn, lambda: self._end_drain(drain, "its last messages read")
        )

    def _read_from(self, name: str, conn: Connection, at_end: Callable[[], None]) -> None:
        """Hand one message from worker ``name``'s pipe on; ``at_end()`` when the pipe ended."""
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = None
        except Exception:  # a message that does not unpickle; the pipe's framing holds
            LOG.exception("Unreadable message from worker %s; dropped", name)
            return
        if message is None:
            # Outside the except block: an exit is reported by its exit code,
            # not as the pipe's EOFError.
            at_end()
            return
        try:
            self._on_message(name, message)
        except Exception:
            LOG.exception("Message from worker %s could not be handled", name)

    def _on_exit(self, worker: _Worker) -> None:
        with self._lock:
            if self._workers.get(worker.spec.name) is not worker or self._stopping.is_set():
                return
            lived = time.monotonic() - worker.started
            process = worker.process
            self._reap(worker, 5.0)
            code = process.exitcode if process is not None else None
            if code == EXIT_PERMANENT:
                worker.permanent = True
                LOG.error(
                    "Worker %s stopped: its plugin cannot run; not restarted until reload",
                    worker.spec.name,
                )
                return
            if lived > HEALTHY_AFTER:
                worker.delay = self.restart_delay
            if code in (0, -signal.SIGTERM):
                self._signalled(worker, code)
                return
            self._schedule(worker, lived, code)

    def _signalled(self, worker: _Worker, code: int) -> None:
        # A worker exits so only when told to stop: SIGTERM sent to the whole
        # process group (timeout, docker, systemd's control-group kill) reaches
        # it at the same moment as the main process, which is stopping too.
        # Restart only if the daemon still runs after the grace period.
        delay = max(worker.delay, self.stopped_grace)
        worker.restart_at = time.monotonic() + delay
        LOG.info(
            "Worker %s was stopped by a signal (exit code %s); restarting in %.1f s "
            "unless the daemon is stopping",
            worker.spec.name,
            code,
            delay,
        )

    def _schedule(self, worker: _Worker, lived: float, code: int | None) -> None:
        name = worker.spec.name
        worker.restart_at = time.monotonic() + worker.delay
        LOG.warning(
            "Worker %s died (exit code %s) after %.1f s; restarting in %.1f s",
            name,
            code,
            lived,
            worker.delay,
        )
        worker.delay = min(max(worker.delay * 2, 0.1), self.restart_max_delay)

    def _restart_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            for worker in self._workers.values():
                if worker.restart_at is not None and worker.restart_at <= now:
                    self._spawn(worker)
                    self._on_restart(worker.spec.name)


def _finish(drains: list[_Drain], deadline: float) -> None:
    """Let the processes of ``drains`` exit until ``deadline``, then kill those left."""
    for drain in drains:
        drain.process.join(max(0.0, deadline - time.monotonic()))
        if drain.process.is_alive():
            drain.process.kill()
            drain.process.join(1.0)
