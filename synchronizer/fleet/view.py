"""The fleet's RPC view: any member answers for every partition, from the shared store.

Every member serves :class:`FleetViewEndpoint` on the daemon's RPC topic
(``rpc_topic``), so ``client.get_all`` and ``client.watch`` reach whichever
member the broker picks, and a member that dies takes no consumer with it.
It reads the database, not its own dispatchers: it answers for partitions
it does not own, and for partitions no one owns during a failover.

The methods are the single daemon's (:mod:`synchronizer.outputs.rpc_api`)
plus ``streams``, which tells a watcher that it talks to a fleet:

``streams()``                 → ``{partition: {epoch, seq, types}}``
``snapshot_begin(types, partition=None)`` → the view of those types (of that
                              partition only, when given: a watcher's gate
                              asks so, as two clouds' partitions hold the
                              same types); ``epoch`` and ``seq`` are the
                              partition's when it is given or the types are all
                              of one partition (``""`` and 0 otherwise)
``history_begin(types, epoch, after)`` → the changes after ``after`` of the
                              partition whose epoch that is, or ``gone``

A partition's epoch is its stream's id in the database: it stays the same
across owners, so a watcher's position per partition survives a failover.

Threading: oslo.messaging's executor calls the methods on several threads;
the snapshots (:class:`~synchronizer.outputs.rpc.Snapshots`) are guarded by
a lock, each read takes its own connection.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from synchronizer import backend
from synchronizer.dispatch import sql
from synchronizer.outputs.rpc import Snapshots, read_history
from synchronizer.outputs.rpc_api import NAMESPACE, VERSION, target

if TYPE_CHECKING:
    import oslo_messaging
    import sqlalchemy as sa
    from oslo_config import cfg

__all__ = ["FleetViewEndpoint", "build_server"]


class FleetViewEndpoint:
    """Answers the view and history RPCs for all partitions from the shared store.

    ``types`` maps each configured partition to its entity types (every
    member computes the same map from the same configuration).
    """

    def __init__(
        self,
        engine: sa.engine.Engine,
        types: Mapping[str, frozenset[str]],
        chunk_size: int,
        server: str,
    ) -> None:
        self.target = backend.messaging().Target(namespace=NAMESPACE, version=VERSION)
        self.engine = engine
        self.types = dict(types)
        self.server = server
        self.snapshots = Snapshots(chunk_size, server)

    def streams(self, ctxt: Any) -> dict[str, dict[str, Any]]:
        found, _ = sql.read_views(self.engine, ())
        return {
            name: {"epoch": epoch, "seq": seq, "types": sorted(self.types.get(name, ()))}
            for name, (epoch, seq) in found.items()
        }

    def snapshot_begin(
        self, ctxt: Any, types: list[str] | None, partition: str | None = None
    ) -> dict[str, Any]:
        found, docs = sql.read_views(self.engine, types, partition)
        partition = partition or self._partition_of(types)
        epoch, seq = found.get(partition, ("", 0)) if partition else ("", 0)
        return self.snapshots.begin(docs, seq, epoch)

    def history_begin(
        self, ctxt: Any, types: list[str] | None, epoch: str, after: int
    ) -> dict[str, Any]:
        found, _ = sql.read_views(self.engine, ())
        partition = next((p for p, (e, _) in found.items() if e == epoch), None)
        if partition is None:
            return {"gone": True, "why": "epoch", "epoch": ""}
        end = found[partition][1]
        store = sql.SQLStore(self.engine, partition, self.server)
        changes = read_history(store.history, after, end, types)
        if changes is None:
            return {"gone": True, "why": "history", "epoch": epoch}
        return {"gone": False, **self.snapshots.begin(changes, end, epoch)}

    def snapshot_chunk(self, ctxt: Any, id: str, index: int) -> list[dict[str, Any]]:
        return self.snapshots.chunk(id, index)

    def snapshot_end(self, ctxt: Any, id: str) -> None:
        self.snapshots.end(id)

    def _partition_of(self, types: Collection[str] | None) -> str | None:
        if not types:
            return None
        owners = {p for p, held in self.types.items() if held & set(types)}
        return owners.pop() if len(owners) == 1 else None


def build_server(
    conf: cfg.ConfigOpts,
    engine: sa.engine.Engine,
    types: Mapping[str, frozenset[str]],
    member_id: str,
) -> oslo_messaging.MessageHandlingServer:
    """The member's RPC view server, its direct queue named after the member."""
    oslo_messaging = backend.messaging()
    transport = oslo_messaging.get_rpc_transport(conf)
    endpoint = FleetViewEndpoint(engine, types, conf.chunk_size, f"fleet-{member_id}")
    return oslo_messaging.get_rpc_server(transport, target(conf, endpoint.server), [endpoint])
