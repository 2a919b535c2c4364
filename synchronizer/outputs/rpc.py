"""The daemon's RPC surface: the current view, streamed in chunks.

Out-of-process consumers call it through :mod:`synchronizer.outputs.client`.  A
snapshot of 100,000 entities never travels as one message: ``begin`` takes
a consistent copy under the dispatcher's lock and returns its size, the
sequence number it covers and this server's name; ``chunk`` returns one
slice; ``end`` frees it (abandoned snapshots expire after a minute).  The
surface exposes entities only: no configuration, no credential.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from synchronizer import backend
from synchronizer.outputs.rpc_api import NAMESPACE, VERSION, target

if TYPE_CHECKING:
    import oslo_messaging
    from oslo_config import cfg

    from synchronizer.dispatch.dispatcher import Dispatcher

SNAPSHOT_TTL = 60.0


class ViewEndpoint:
    """RPC endpoint answering ``get_all`` in chunks from the dispatcher's view."""

    def __init__(self, dispatcher: Dispatcher, chunk_size: int) -> None:
        # oslo.messaging dispatches by the endpoint's own target namespace/version.
        self.target = backend.messaging().Target(namespace=NAMESPACE, version=VERSION)
        self.dispatcher = dispatcher
        self.chunk_size = chunk_size
        self.server = socket.gethostname()
        self._snapshots: dict[str, tuple[float, list[Any]]] = {}
        self._lock = threading.Lock()

    def snapshot_begin(self, ctxt: Any, types: list[str] | None) -> dict[str, Any]:
        changes, seq = self.dispatcher.current(set(types) if types else None)
        sid = uuid.uuid4().hex
        with self._lock:
            self._expire()
            self._snapshots[sid] = (time.monotonic(), changes)
        chunks = (len(changes) + self.chunk_size - 1) // self.chunk_size
        return {
            "id": sid,
            "count": len(changes),
            "chunks": chunks,
            "seq": seq,
            "server": self.server,
        }

    def snapshot_chunk(self, ctxt: Any, id: str, index: int) -> list[dict[str, Any]]:
        with self._lock:
            _, changes = self._snapshots[id]
        part = changes[index * self.chunk_size : (index + 1) * self.chunk_size]
        return [c.to_dict() for c in part]

    def snapshot_end(self, ctxt: Any, id: str) -> None:
        with self._lock:
            self._snapshots.pop(id, None)

    def _expire(self) -> None:
        cutoff = time.monotonic() - SNAPSHOT_TTL
        for sid in [s for s, (at, _) in self._snapshots.items() if at < cutoff]:
            del self._snapshots[sid]


def build_server(
    conf: cfg.ConfigOpts, dispatcher: Dispatcher
) -> oslo_messaging.MessageHandlingServer:
    oslo_messaging = backend.messaging()
    transport = oslo_messaging.get_rpc_transport(conf)
    endpoint = ViewEndpoint(dispatcher, conf.chunk_size)
    # No executor argument: oslo.messaging deprecates it and picks the
    # threading executor by itself when eventlet is not monkey-patched.
    return oslo_messaging.get_rpc_server(transport, target(conf, endpoint.server), [endpoint])
