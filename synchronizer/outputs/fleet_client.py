"""A watcher of a fleet: one stream for the consumer, one position per partition inside.

A fleet (:mod:`synchronizer.fleet`) tells each partition's changes as a
stream of its own: the partition's *epoch* (its id in the shared database,
the same whichever member owns it) and consecutive ``seq`` numbers.
:func:`watch` is what :func:`synchronizer.outputs.client.watch` runs when
the daemon that answers is a fleet member: one watcher gate per partition
(the single daemon's gate, with the view, history, gap filling and
relisting scoped to that partition's types), and a router that hands each
stream item to the gate of its epoch.  The consumer sees what it sees
against one daemon: the view as ``snapshot`` items, one ``Synced``, then
live changes; ``handle.position`` is a ``{epoch: seq}`` mapping that
``watch(..., since=position)`` takes back.  After a failover the new owner
continues the same epoch and ``seq``: a watcher drops what it already had
(the new owner re-sends from its sinks' saved positions) and fills any gap
from the partition's history, from any member.

Threading: the gates deliver under one shared lock, so the callback is
called one call at a time, as with one daemon.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from synchronizer import backend, opts
from synchronizer.fleet.partitions import cloud_of
from synchronizer.model import Synced
from synchronizer.outputs import rpc_api

if TYPE_CHECKING:
    from oslo_config import cfg

    from synchronizer.model import Change
    from synchronizer.outputs.client import Bookmark, Handle, Item, _Gate

LOG = logging.getLogger(__name__)

__all__ = ["Streams", "fleet_streams", "watch"]

DISCOVER_EVERY = 5.0  # seconds between two askings for the fleet's partitions


def fleet_streams(conf: cfg.ConfigOpts, timeout: int) -> dict[str, dict[str, Any]] | None:
    """``partition → {epoch, seq, types}`` when a fleet answers; None for one daemon.

    Raises :class:`~synchronizer.errors.DaemonUnreachable` when nobody answers.
    """
    from synchronizer.errors import DaemonUnreachable

    opts.register_opts(conf)
    oslo_messaging = backend.messaging()
    transport = oslo_messaging.get_rpc_transport(conf)
    try:
        caller = oslo_messaging.get_rpc_client(transport, rpc_api.target(conf), timeout=timeout)
        try:
            return dict(caller.call({}, "streams"))
        except oslo_messaging.MessagingTimeout:
            raise DaemonUnreachable(
                f"no synchronizer daemon answered on RPC topic {conf.rpc_topic!r} within "
                f"{timeout} s"
            ) from None
        except oslo_messaging.NoSuchMethod:
            return None  # a single daemon: it has no streams method
        except oslo_messaging.RemoteError as exc:
            if exc.exc_type == "NoSuchMethod":
                return None
            raise
    finally:
        transport.cleanup()


class Streams:
    """Routes stream items to the gate of their epoch; one position per partition.

    Items of an epoch no gate watches (a partition whose types are not
    watched) are dropped.  On a first start the first ``Synced`` of each
    gate is held back until every gate has delivered its view, then one
    ``Synced`` for all is delivered.  On a resume, the partitions the
    position covers resume from their history, and each one it does not
    cover (its stream started anew while the consumer was away) relists as
    a live relist does: a ``Relist`` marker, its view, a ``Synced`` of its
    types, so that a consumer drops what that view left out, of those
    types only.
    """

    def __init__(
        self,
        callback: Callable[[Item], None],
        types: tuple[str, ...] | None,
        make_gate: Callable[[str, tuple[str, ...], Callable[[Item], None]], _Gate],
        partitions: Mapping[str, Mapping[str, Any]],
        refresh: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None,
    ) -> None:
        self.callback = callback
        self.types = types
        self.lock = threading.RLock()
        self._opened = False
        self._merging = True  # a first start: the gates' Synced are held for one
        self._held = 0
        self.gates: dict[str, _Gate] = {}  # by the epoch each started from
        # (cloud, entity type) → its partition's gate: two clouds' partitions hold
        # the same types (east.nova, west.nova).
        self._types: dict[tuple[str | None, str], _Gate] = {}
        self._wanted = set(types) if types else None
        self._make_gate = make_gate
        self._refresh = refresh
        self._looked = -DISCOVER_EVERY  # monotonic time of the last refresh
        self._add(partitions)

    def _add(self, partitions: Mapping[str, Mapping[str, Any]]) -> list[_Gate]:
        """Gates for the partitions not watched yet (of the wanted types)."""
        added = []
        for name, info in partitions.items():
            cloud = cloud_of(name)
            held = tuple(
                t
                for t in info["types"]
                if (self._wanted is None or t in self._wanted) and (cloud, t) not in self._types
            )
            if held and str(info["epoch"]) not in self.gates:
                gate = self._make_gate(str(info["epoch"]), held, self._deliver)
                self.gates[str(info["epoch"])] = gate
                self._types.update({(cloud, t): gate for t in held})
                added.append(gate)
        return added

    def _discover(self, cloud: str | None, type_: str) -> _Gate | None:
        """A change of a type no gate watches: a partition that appeared after the start.

        The fleet is asked for its partitions again (at most every
        :data:`DISCOVER_EVERY` seconds); each new one's gate starts from its
        view, as a relist of that partition (its snapshot items, then a
        ``Synced`` for its types), and goes on from there.
        """
        if (
            self._refresh is None
            or not type_
            or (self._wanted is not None and type_ not in self._wanted)
            or time.monotonic() - self._looked < DISCOVER_EVERY
        ):
            return None
        self._looked = time.monotonic()
        try:
            partitions = self._refresh()
        except Exception as exc:  # noqa: BLE001 - asked again at the next such change
            LOG.warning(
                "A change of %s from a partition not watched; asking the fleet "
                "for its partitions failed: %s",
                type_,
                exc,
            )
            return None
        with self.lock:
            for gate in self._add(partitions):
                LOG.info(
                    "Watching a partition that appeared after the start: %s",
                    ", ".join(gate.types or ()),
                )
                if self._opened:
                    gate.open(None)
            return self._types.get((cloud, type_))

    def _deliver(self, item: Item) -> None:
        with self.lock:
            if isinstance(item, Synced) and not self._opened and self._merging:
                self._held += item.count
                return
            self.callback(item)

    def offer(self, item: Change | Bookmark, epoch: str | None) -> None:
        gate = self._route(item, epoch or "")
        if gate is not None:
            gate.offer(item, epoch)

    def _route(self, item: Change | Bookmark, epoch: str) -> _Gate | None:
        """The gate of this epoch now; for a change of a new epoch, its type's gate.

        A partition whose stream was started anew (its database rows lost or
        restored) has a new epoch: its type's gate sees the epoch change and
        relists that partition.
        """
        for started, gate in self.gates.items():
            if (gate.epoch or started) == epoch:
                return gate
        entity = getattr(item, "entity", None)
        cloud, type_ = getattr(entity, "cloud", None), getattr(item, "type", "")
        return self._types.get((cloud, type_)) or self._discover(cloud, type_)

    def open(self, since: Mapping[str, int] | None) -> None:
        """From the views (``since`` None), or resumed from ``{epoch: seq}``."""
        with self.lock:
            self._merging = since is None
            for epoch, gate in self.gates.items():
                if since is None:
                    gate.open(None)
                elif epoch in since:
                    gate.open((epoch, int(since[epoch])))
                else:
                    gate.open(None, relist=f"the saved position has none for epoch {epoch}")
            self._opened = True
            if since is None:
                self.callback(Synced(self.types, self._held))

    @property
    def position(self) -> dict[str, int]:
        """``{epoch: seq}``, one entry per watched partition (its current epoch)."""
        return dict(gate.position for gate in self.gates.values())

    @property
    def relists(self) -> int:
        return sum(gate.relists for gate in self.gates.values())

    def close(self) -> None:
        for gate in self.gates.values():
            gate.close()


def watch(
    conf: cfg.ConfigOpts,
    entity_types: Collection[str] | None,
    callback: Callable[[Item], None],
    partitions: Mapping[str, Mapping[str, Any]],
    *,
    pool: str | None,
    since: Mapping[str, int] | None,
    timeout: int,
) -> Handle:
    """A fleet's partitions as one watched stream (see the module docstring)."""
    from synchronizer.outputs import client

    names = {str(info["epoch"]): name for name, info in partitions.items()}

    def make_gate(epoch: str, held: tuple[str, ...], deliver: Callable[[Item], None]) -> _Gate:
        # The view of this partition only: its epoch and seq, and not another
        # cloud's entities of the same types.
        return client._Gate(
            deliver,
            held,
            view=lambda: client.get_all(conf, held, timeout=timeout, partition=names[epoch]),
            history=lambda position: client.history_since(conf, held, position, timeout=timeout),
        )

    types = tuple(sorted(entity_types)) if entity_types else None

    def refresh() -> Mapping[str, Mapping[str, Any]]:
        found = fleet_streams(conf, timeout) or {}
        names.update({str(info["epoch"]): name for name, info in found.items()})
        return found

    streams = Streams(callback, types, make_gate, partitions, refresh=refresh)
    handle = client.subscribe(
        conf, entity_types, lambda change: None, pool=pool, _raw=streams.offer
    )
    handle.gate = streams  # type: ignore[assignment]  # position and relists as a gate's
    try:
        streams.open(since)
    except BaseException:
        handle.stop()
        raise
    return handle
