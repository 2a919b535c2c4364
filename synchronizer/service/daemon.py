"""The daemon: the synchronizer as an oslo.service service (threading backend).

``SynchronizerService`` wraps a :class:`~synchronizer.service.library.Synchronizer`;
``run()`` launches it with oslo.service's in-process ``Launcher`` and owns
the signals:

* SIGTERM / SIGINT: stop the workers and subscribers, exit 0;
* SIGHUP: reload the configuration files, then the plugin list and periods,
  restarting only the workers whose plugin options changed;
* systemd (``Type=notify``): ``READY=1`` once every collector's first
  complete snapshot is in, and ``STATUS=`` with the counts every few seconds.

The service runs in the main process (not in a cotyledon child), because
its worker processes are supervised by the synchronizer itself and the
in-memory view must outlive any one worker.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

# The backend-neutral base class (what oslo.service's launcher checks):
# importing it chooses no backend, unlike oslo_service.service.
from oslo_service.backend.base import ServiceBase

from synchronizer import backend
from synchronizer.errors import ConfigError, StateLocked
from synchronizer.service import library

LOG = logging.getLogger(__name__)

STATUS_INTERVAL = 5.0
EXIT_CONFIG = 2  # as the commands exit on a configuration error


def sd_status(text: str) -> None:
    """Send ``STATUS=text`` to systemd when run under ``Type=notify``.

    Read from the environment on every call: READY is sent with
    oslo.service's ``systemd.notify()``, which (unlike ``notify_once()``)
    leaves ``NOTIFY_SOCKET`` set, so STATUS keeps updating after READY.
    Never waits: a status the socket has no room for (its reader is behind)
    is dropped, the next one comes a few seconds later.
    """
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        try:
            sock.connect(address)
            sock.sendall(f"STATUS={text}".encode())
        except OSError:  # BlockingIOError among them: the reader's queue is full
            LOG.debug("systemd status notification failed", exc_info=True)


class SynchronizerService(ServiceBase):
    """oslo.service service around one Synchronizer."""

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        conf_args: list[str],
        on_fatal: Callable[[], None] = lambda: None,
    ) -> None:
        # A closed stdout (the jsonl sink's reader went away) stops the daemon.
        self.sync: Any
        from synchronizer.fleet import options as fleet_options

        if fleet_options.enabled(conf):
            # A fleet member ([coordination] backend_url): the partitions it owns.
            from synchronizer.fleet.member import Member

            self.sync = Member(conf, conf_args, on_output_closed=on_fatal)
        else:
            self.sync = library.Synchronizer(conf, conf_args, on_output_closed=on_fatal)
        self._stopped = threading.Event()
        self._on_fatal = on_fatal
        self.failure: Exception | None = None

    def start(self) -> None:
        try:
            self.sync.start()
        except Exception as exc:  # noqa: BLE001 - reported, and the daemon exits 1
            self.failure = exc
        if self.failure is not None:
            # A daemon that cannot start must not stay up doing nothing.
            # (Logged outside the except block: the reason, without a traceback.)
            LOG.error("Cannot start: %s", self.failure)
            self.sync.stop()
            self._on_fatal()
            return
        library.on_ready(self.sync, self._ready)
        threading.Thread(target=self._report_status, name="sd-status", daemon=True).start()

    def _ready(self) -> None:
        LOG.info("Ready: %s", self.sync.status.text())
        sd_status(self.sync.status.text())
        from oslo_service import systemd

        systemd.notify()

    def _report_status(self) -> None:
        while not self._stopped.wait(STATUS_INTERVAL):
            sd_status(self.sync.status.text())

    def stop(self) -> None:
        self._stopped.set()
        self.sync.stop()

    def wait(self) -> None:
        self._stopped.wait()

    def reset(self) -> None:
        self.sync.reload()


def run(conf: cfg.ConfigOpts, conf_args: list[str]) -> int:
    """Run the daemon until SIGTERM/SIGINT; return the exit status."""
    backend.select()
    from oslo_service import service as os_service

    done = threading.Event()
    locked: StateLocked | None = None
    problem: ConfigError | None = None
    try:
        svc = SynchronizerService(conf, conf_args, on_fatal=done.set)
    except StateLocked as exc:
        locked = exc
    except ConfigError as exc:  # a fleet member without the fleet's libraries
        problem = exc
    if problem is not None:
        LOG.error("Cannot start: %s", problem)
        return EXIT_CONFIG
    if locked is not None:
        # One line (logged outside the except block: no traceback): the state,
        # and so the stream, is another daemon's.
        LOG.error("Cannot start: %s", locked)
        return 1
    launcher = os_service.Launcher(conf, restart_method="mutate")

    def on_stop(signo: int, frame: Any) -> None:
        LOG.info("Caught %s, stopping", signal.Signals(signo).name)
        done.set()

    def on_hup(signo: int, frame: Any) -> None:
        LOG.info("Caught SIGHUP, reloading the configuration")
        threading.Thread(target=_reload, args=(conf, svc), name="reload", daemon=True).start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    launcher.launch_service(svc)
    while not done.wait(0.2):
        pass
    launcher.stop()
    if isinstance(svc.failure, ConfigError):
        return EXIT_CONFIG
    if svc.failure is not None:
        return 1
    LOG.info("Stopped")
    return 0


def _reload(conf: cfg.ConfigOpts, svc: SynchronizerService) -> None:
    try:
        conf.reload_config_files()
        svc.reset()
    except Exception:
        LOG.exception("Reload failed; the previous plugin set keeps running")
