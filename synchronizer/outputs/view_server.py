"""The RPC view server's lifecycle: connected in the background, stopped within a bound.

The view server (:mod:`synchronizer.outputs.rpc`) must connect to the
broker before it serves, and oslo.messaging's ``start()`` blocks, retrying,
for as long as the broker is away.  The daemon must not: its collectors and
other sinks work without a broker, READY does not wait for one, and SIGTERM
is honoured in every state.  :class:`ViewServer` therefore connects on its
own thread and is abandoned, not waited for, if it is still connecting when
the daemon stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from synchronizer.outputs import rpc, sinks

if TYPE_CHECKING:
    from oslo_config import cfg

    from synchronizer.dispatch.dispatcher import Dispatcher

LOG = logging.getLogger(__name__)


class ViewServer:
    """The RPC view server, connected in the background and stopped within a bound.

    ``start()`` returns at once: the server connects on its own thread,
    however long the broker takes to answer (one warning names it if that
    is more than a few seconds), so the collectors and the other sinks run
    meanwhile.  ``stop()`` never waits more than its timeout: a server
    still connecting is abandoned (its thread is a daemon).
    """

    PATIENCE = 5.0

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        dispatcher: Dispatcher | None,
        build: Callable[[], Any] | None = None,
    ) -> None:
        self.conf = conf
        self.dispatcher = dispatcher
        # A fleet member serves the shared store instead of a dispatcher.
        self._build = build or (lambda: rpc.build_server(conf, dispatcher))
        self.server: Any = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="rpc-view", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        broker = sinks.broker_address(self.conf)
        slow = threading.Timer(self.PATIENCE, _warn_broker_silent, (broker,))
        slow.daemon = True
        slow.start()
        try:
            server = self._build()
            server.start()  # connects: blocks while the broker is away
        except Exception as exc:  # noqa: BLE001 - reported; the rest of the daemon goes on
            LOG.error("The RPC view could not start (%s: %s)", type(exc).__name__, exc)
            return
        finally:
            slow.cancel()
        with self._lock:
            self.server = server
            stopped = self._stopped
        if stopped:
            _bounded(self._halt, self.PATIENCE)
            return
        LOG.info("RPC view serving on topic %s (broker %s)", self.conf.rpc_topic, broker)

    def _halt(self) -> None:
        self.server.stop()
        self.server.wait()

    def stop(self, timeout: float) -> None:
        with self._lock:
            self._stopped = True
            server = self.server
        if server is not None:
            if not _bounded(self._halt, timeout):
                LOG.warning("The RPC view did not stop within %.1f s; left behind", timeout)
        elif self._thread is not None and self._thread.is_alive():
            LOG.info("The RPC view was still waiting for the broker; abandoned")


def _warn_broker_silent(broker: str) -> None:
    LOG.warning(
        "The broker at %s does not answer: the RPC view (client.get_all, synchronizer-watch) "
        "and the message sink wait for it; the collectors and the other sinks go on",
        broker,
    )


def _bounded(fn: Callable[[], None], timeout: float) -> bool:
    """Run ``fn`` on a helper thread; whether it finished within ``timeout``."""
    thread = threading.Thread(target=fn, name="bounded-stop", daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()
