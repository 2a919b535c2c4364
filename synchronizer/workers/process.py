"""The start of every worker process, and how it talks back to the main one.

A worker (a collector, or the notification worker) is a fresh interpreter
started by the supervisor.  :func:`prepare_child` gives it the same
configuration as the main process, leaves SIGINT and SIGHUP to the main
process, turns SIGTERM into a stop event, and starts a watchdog that ends
the worker if the main process dies (even by SIGKILL)::

    def worker_main(conf_args, names, chunk_size, conn):
        conf, stop = prepare_child(conf_args)
        send = Sender(conn)
        plugins = plugin_loader.load(conf, names, CollectorPlugin, reporter(send))
        if not plugins:
            raise SystemExit(EXIT_PERMANENT)   # not restarted until reload
        ...

A worker that exits with :data:`EXIT_PERMANENT` (its plugin cannot run) is
not restarted by the supervisor until the next reload; any other exit is a
crash and is restarted with back-off.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection

import setproctitle
from oslo_config import cfg

from synchronizer import opts, wire
from synchronizer.plugin_loader import OnFailure

LOG = logging.getLogger(__name__)

EXIT_PERMANENT = 3  # the supervisor does not restart a worker that exits so


def _watch_parent(stop: threading.Event, parent: int) -> None:
    # A worker whose main process died (even by SIGKILL) must not linger.
    while not stop.wait(1.0):
        if os.getppid() != parent:
            LOG.warning("Main process is gone; worker exits")
            os._exit(0)


def name_process(title: str, *, standby: bool = False) -> None:
    """``synchronizer: <title>`` in ``ps`` and ``top``, ``(standby)`` while on standby."""
    setproctitle.setproctitle(f"synchronizer: {title}{' (standby)' if standby else ''}")


def prepare_child(
    conf_args: list[str], title: str | None = None, *, standby: bool = False
) -> tuple[cfg.ConfigOpts, threading.Event]:
    """Common start of a worker process: title, signals, config, logging, watchdog.

    ``title`` names the process for ``ps`` and ``top`` (``synchronizer:
    collector nova.instance``, ``... (standby)`` for a worker waiting at its
    gate) instead of ``multiprocessing.spawn ...``.
    """
    if title:
        name_process(title, standby=standby)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    conf = opts.parse(conf_args)
    threading.Thread(
        target=_watch_parent, args=(stop, os.getppid()), daemon=True, name="watch-parent"
    ).start()
    return conf, stop


class Sender:
    """Sends messages on the worker's end of its pipe, one whole message at a time.

    Threading: callable from any thread (a lock keeps messages from interleaving).
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def __call__(self, message: wire.Message) -> None:
        with self._lock:
            self._conn.send(message)


def reporter(send: Callable[[wire.Message], None]) -> OnFailure:
    """A loader failure callback that logs the failure and reports it to the main process."""

    def report(name: str, state: wire.PluginState, reason: str) -> None:
        LOG.error("%s", reason)
        send(wire.PluginStatus(name, state, reason))

    return report
