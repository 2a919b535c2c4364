"""The daemon's RPC surface: the current view and the history, streamed in chunks.

Out-of-process consumers call it through :mod:`synchronizer.outputs.client`.  A
snapshot of 100,000 entities never travels as one message: ``begin`` takes
a consistent copy (from the durable store's own read snapshot, without
holding the dispatcher; from the ledger under its lock otherwise) and
returns its size, the sequence number it covers, the store's epoch and this
server's name; ``chunk`` returns one slice; ``end`` frees it (abandoned
snapshots expire after a minute).  ``history_begin`` does the same for the
changes after a consumer's saved position, or says the position is
``gone`` (another epoch, or older than the history).  The surface exposes
entities only: no configuration, no credential.

The server's name (its direct queue) is the host name plus a short hash
of the daemon's state path (or configuration files): two daemons on one
host answer on queues of their own, and a restarted daemon reuses its
queue rather than leaving one behind per restart.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from synchronizer import backend
from synchronizer.dispatch import store
from synchronizer.outputs.rpc_api import NAMESPACE, VERSION, target

if TYPE_CHECKING:
    import oslo_messaging
    from oslo_config import cfg

    from synchronizer.dispatch.dispatcher import Dispatcher

SNAPSHOT_TTL = 60.0
HISTORY_READ = 10_000  # history rows read per store call


def server_name(conf: cfg.ConfigOpts, epoch: str) -> str:
    """``<host>-<hash>``: stable for one daemon's state, distinct between daemons.

    A durable state is named by its file: a restarted daemon finds its
    queue again.  ``state = memory`` is new every run and named by its
    epoch: two such daemons on one configuration each get their own.
    """
    path = store.state_path(conf) if conf.state == "sqlite" else None
    identity = path or f"memory\0{epoch}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


def _as_dict(item: Any) -> dict[str, Any]:
    return orjson.loads(item) if isinstance(item, str) else item.to_dict()


class Snapshots:
    """The copies ``*_begin`` took, handed out in chunks until ended or a minute old.

    Shared by the single daemon's endpoint and the fleet's.  Threading: the
    executor's threads call it at once; a lock guards the copies.
    """

    def __init__(self, chunk_size: int, server: str) -> None:
        self.chunk_size = chunk_size
        self.server = server
        self._copies: dict[str, tuple[float, list[Any]]] = {}
        self._lock = threading.Lock()

    def begin(self, items: list[Any], seq: int, epoch: str) -> dict[str, Any]:
        """Keep ``items`` (changes or their JSON); what a caller needs to fetch them."""
        sid = uuid.uuid4().hex
        with self._lock:
            cutoff = time.monotonic() - SNAPSHOT_TTL
            for old in [s for s, (at, _) in self._copies.items() if at < cutoff]:
                del self._copies[old]
            self._copies[sid] = (time.monotonic(), items)
        chunks = (len(items) + self.chunk_size - 1) // self.chunk_size
        return {
            "id": sid,
            "count": len(items),
            "chunks": chunks,
            "seq": seq,
            "epoch": epoch,
            "server": self.server,
        }

    def chunk(self, id: str, index: int) -> list[dict[str, Any]]:
        with self._lock:
            _, items = self._copies[id]
        part = items[index * self.chunk_size : (index + 1) * self.chunk_size]
        return [_as_dict(item) for item in part]

    def end(self, id: str) -> None:
        with self._lock:
            self._copies.pop(id, None)


def read_history(
    read: Callable[[int, int], list[Any] | None],
    after: int,
    end: int,
    types: list[str] | None,
) -> list[Any] | None:
    """The changes after ``after`` up to ``end`` (of ``types``), or None: older than the history.

    ``read(position, limit)`` is a store's ``history``.
    """
    wanted = set(types) if types else None
    changes: list[Any] = []
    position = after
    while position < end:
        part = read(position, HISTORY_READ)
        if part is None:
            return None
        if not part:
            break
        changes.extend(c for c in part if c.seq <= end and (not wanted or c.type in wanted))
        position = part[-1].seq
    return changes


class ViewEndpoint:
    """RPC endpoint answering ``get_all`` and resumes in chunks from the store."""

    def __init__(self, dispatcher: Dispatcher, chunk_size: int, server: str = "") -> None:
        # oslo.messaging dispatches by the endpoint's own target namespace/version.
        self.target = backend.messaging().Target(namespace=NAMESPACE, version=VERSION)
        self.dispatcher = dispatcher
        self.server = server or socket.gethostname()
        self.snapshots = Snapshots(chunk_size, self.server)

    def snapshot_begin(self, ctxt: Any, types: list[str] | None) -> dict[str, Any]:
        seq, items = self.dispatcher.view_docs(set(types) if types else None)
        return self.snapshots.begin(items, seq, self.dispatcher.epoch)

    def history_begin(
        self, ctxt: Any, types: list[str] | None, epoch: str, after: int
    ) -> dict[str, Any]:
        """The changes after ``after`` (of these types), or ``{"gone": True}``."""
        if epoch != self.dispatcher.epoch:
            return {"gone": True, "why": "epoch", "epoch": self.dispatcher.epoch}
        end = self.dispatcher.last_seq()
        changes = read_history(self.dispatcher.history, after, end, types)
        if changes is None:
            return {"gone": True, "why": "history", "epoch": self.dispatcher.epoch}
        return {"gone": False, **self.snapshots.begin(changes, end, self.dispatcher.epoch)}

    def snapshot_chunk(self, ctxt: Any, id: str, index: int) -> list[dict[str, Any]]:
        return self.snapshots.chunk(id, index)

    def snapshot_end(self, ctxt: Any, id: str) -> None:
        self.snapshots.end(id)


def build_server(
    conf: cfg.ConfigOpts, dispatcher: Dispatcher
) -> oslo_messaging.MessageHandlingServer:
    oslo_messaging = backend.messaging()
    transport = oslo_messaging.get_rpc_transport(conf)
    endpoint = ViewEndpoint(dispatcher, conf.chunk_size, server_name(conf, dispatcher.epoch))
    # No executor argument: oslo.messaging deprecates it and picks the
    # threading executor by itself when eventlet is not monkey-patched.
    return oslo_messaging.get_rpc_server(transport, target(conf, endpoint.server), [endpoint])
