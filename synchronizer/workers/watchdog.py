"""The collector worker's watchdog: a poll cycle that never ends ends its worker.

A listing can block where no timeout reaches: a plugin waiting on an event,
an API that answers a byte at a time (each read within the client's read
timeout), a lock never released.  So the poll loop runs on a thread of its
own and the worker's main thread watches it (:meth:`Watchdog.run`).  When
one cycle has run past its bound (:func:`cycle_bound`: ``[plugin]
cycle_timeout``, by default ten periods and at least 300 s) the main thread
logs so, reports the plugin :attr:`~synchronizer.wire.PluginState.HUNG` to
the main process and exits with :data:`EXIT_HUNG`; the supervisor restarts
the worker with its usual back-off, and readiness no longer waits for the
plugin (:mod:`synchronizer.service.status`).  A stop (SIGTERM) ends the
worker within :data:`STOP_GRACE` seconds even while the cycle is blocked::

    loop = PollLoop(plugin, name, send, chunk_size)
    Watchdog(loop, cycle_bound(plugin.options)).run(stop)   # returns when stopped

Threading: :meth:`Watchdog.run` on the worker's main thread; it starts the
poll thread itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from synchronizer import wire

LOG = logging.getLogger(__name__)

EXIT_HUNG = 4  # a cycle overran its bound; the supervisor restarts the worker
STOP_GRACE = 2.0  # seconds a stopping worker waits for the cycle in progress
TICK = 0.5  # how often the main thread looks at the cycle
MIN_BOUND = 300.0
PERIODS = 10


class Watched(Protocol):
    """What the watchdog needs of a poll loop (a :class:`~.collector.PollLoop`)."""

    name: str
    send: Callable[[wire.Message], None]
    cycle_started: float | None

    def run(self, stop: threading.Event) -> None: ...


def cycle_bound(options: Any) -> float:
    """How long one cycle of a plugin may run: its ``cycle_timeout``, or ten periods (≥ 300 s)."""
    configured = float(getattr(options, "cycle_timeout", 0.0) or 0.0)
    return configured or max(PERIODS * float(options.period), MIN_BOUND)


class Watchdog:
    """Runs a poll loop on its own thread and ends the process when a cycle hangs.

    ``clock`` (monotonic seconds) and ``exit`` (``os._exit``: the poll
    thread cannot be stopped, so the process ends without waiting for it)
    are replaceable for tests.
    """

    def __init__(
        self,
        loop: Watched,
        bound: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        exit: Callable[[int], Any] = os._exit,
    ) -> None:
        self.loop = loop
        self.bound = bound
        self._clock = clock
        self._exit = exit
        self._error: BaseException | None = None

    def overrun(self) -> float | None:
        """How long the running cycle has run, if past the bound; else None."""
        started = self.loop.cycle_started
        if started is None:
            return None
        age = self._clock() - started
        return age if age > self.bound else None

    def run(self, stop: threading.Event) -> None:
        """Run the loop until ``stop``; re-raise what ended it (a PermanentError)."""
        thread = threading.Thread(target=self._poll, args=(stop,), name="poll", daemon=True)
        thread.start()
        while thread.is_alive():
            if stop.wait(TICK):
                self._stopping(thread)
                break
            age = self.overrun()
            if age is not None:
                self._hung(age)
                return
        if self._error is not None:
            raise self._error

    def _poll(self, stop: threading.Event) -> None:
        try:
            self.loop.run(stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self._error = exc

    def _stopping(self, thread: threading.Thread) -> None:
        thread.join(STOP_GRACE)
        if thread.is_alive():
            LOG.warning(
                "%s: the poll cycle did not end within %.0f s of the stop; exiting without it",
                self.loop.name,
                STOP_GRACE,
            )
            _flush_logs()
            self._exit(0)

    def _hung(self, age: float) -> None:
        reason = (
            f"a poll cycle has run for {age:.0f} s, over its bound of {self.bound:.0f} s "
            "(cycle_timeout)"
        )
        LOG.error(
            "%s: %s: declared hung; the worker exits and is restarted", self.loop.name, reason
        )
        status = wire.PluginStatus(self.loop.name, wire.PluginState.HUNG, reason)
        # The poll thread may hold the pipe (blocked in a send): never wait on it for long.
        sender = threading.Thread(target=self.loop.send, args=(status,), daemon=True)
        sender.start()
        sender.join(STOP_GRACE)
        _flush_logs()
        self._exit(EXIT_HUNG)


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):  # exiting anyway
            handler.flush()
