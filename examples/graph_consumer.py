"""An example graph consumer: a networkx graph of the cloud, always current.

Every entity the synchronizer reports is a node; its parent and its
relations are edges.  The graph starts from the running daemon's view and
then follows its change stream, with no gap and no duplicate between the
two, through :func:`synchronizer.outputs.client.watch`.  A summary (entities by type
and state, and the instances on hosts that are down) is printed every
``--summary-every`` seconds and whenever the process gets SIGUSR1::

    python examples/graph_consumer.py --config-file synchronizer.conf --summary-every 30
    kill -USR1 <pid>                   # a summary now

The config file is the daemon's own (or any file with the same
``transport_url``, ``message_topic`` and ``rpc_topic``); the daemon must have
its ``message`` sink on.  Needs networkx: ``pip install 'synchronizer[examples]'``.
See ``examples/README.md``.
"""

from __future__ import annotations

import collections
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator

from oslo_config import cfg

# synchronizer selects oslo.service's threading backend: import it before
# anything that imports oslo.messaging.
from synchronizer import opts
from synchronizer.model import Action, Change, Entity, Synced
from synchronizer.outputs import client

try:
    import networkx as nx
except ImportError:  # pragma: no cover - depends on the installation
    sys.exit("graph_consumer needs networkx: pip install 'synchronizer[examples]'")

Node = tuple[str, str]  # (entity type, key)
Edge = tuple[Node, Node, str]  # (from, to, relation)

PARENT = "parent"
INSTANCE = "nova.instance"
HOST = "nova.host"

CLI_OPTS = [
    cfg.FloatOpt(
        "summary-every",
        default=0.0,
        min=0.0,
        help="Seconds between two summaries (0: only on SIGUSR1).",
    ),
    cfg.MultiStrOpt("type", default=[], help="Only this entity type (repeatable; default all)."),
    cfg.StrOpt("pool", help="Listener pool of this consumer (default: one per process)."),
]


def edges_of(entity: Entity) -> Iterator[tuple[str, Node]]:
    """The (relation, target) edges an entity states: its parent, then its relations."""
    if entity.parent is not None:
        yield PARENT, (entity.parent.type, entity.parent.key)
    for rel in entity.relations:
        yield rel.relation, (rel.type, rel.key)


class TopologyGraph:
    """A ``networkx.MultiDiGraph`` of entities, kept current by changes.

    Nodes are ``(type, key)`` with attributes ``type``, ``key``, ``state``,
    ``project`` and ``placeholder``.  An edge goes from an entity to its
    parent (``relation="parent"``) and to each entity it relates to (the
    relation's name, e.g. ``attached``); edges are keyed by relation.  A
    node that is only pointed at (its type is not followed, or it is
    deleted while others still point at it) is a *placeholder*: no state,
    and it disappears with the last edge to it.

    Invariants: a non-placeholder node holds the newest state received for
    its entity; its out-edges are exactly those that state names.
    Threading: :meth:`apply` and every reader take one lock, so the stream's
    thread and the summary's may run at once.
    """

    def __init__(self) -> None:
        self.graph = nx.MultiDiGraph()
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self._relisted: set[Node] | None = None  # what a relist's view named so far

    # -- writing ---------------------------------------------------------

    def apply(self, item: Change | Synced | client.Relist) -> None:
        """Take one item of :func:`synchronizer.outputs.client.watch` (a change or a marker).

        A ``Relist`` marker says the stream could not tell what changed (the
        daemon came back with another epoch, or changes were lost past its
        history): the view follows, and at its ``Synced`` every entity it did
        not name is removed, of the types it covered (``Synced.types``: in a
        fleet a partition relists alone).  Until then the graph keeps what it
        had.
        """
        if isinstance(item, client.Relist):
            with self.lock:
                self._relisted = set()
            self.synced.clear()
            return
        if isinstance(item, Synced):
            with self.lock:
                relisted, self._relisted = self._relisted, None
                if relisted is not None:
                    self._sweep(relisted, item.types)
            self.synced.set()
            return
        with self.lock:
            if item.action == Action.DELETE:
                self._remove((item.entity.type, item.entity.key))
            else:
                self._put(item.entity)
                if self._relisted is not None:
                    self._relisted.add((item.entity.type, item.entity.key))

    def load(self, entities: Iterable[Entity]) -> TopologyGraph:
        """Add entities as they are (e.g. a :func:`synchronizer.outputs.client.get_all` view)."""
        with self.lock:
            for entity in entities:
                self._put(entity)
        return self

    def _put(self, entity: Entity) -> None:
        node = (entity.type, entity.key)
        before = self._drop_out_edges(node)
        self.graph.add_node(
            node,
            type=entity.type,
            key=entity.key,
            state=entity.state,
            project=entity.project,
            placeholder=False,
        )
        for relation, target in edges_of(entity):
            if target not in self.graph:
                self._add_placeholder(target)
            self.graph.add_edge(node, target, key=relation, relation=relation)
        self._prune(before)

    def _sweep(self, named: set[Node], types: Iterable[str] | None) -> None:
        """Remove the entities of ``types`` (None: all) that a relist's view did not name."""
        covered = None if types is None else set(types)
        gone = [
            node
            for node, data in self.graph.nodes(data=True)
            if not data["placeholder"]
            and node not in named
            and (covered is None or node[0] in covered)
        ]
        for node in gone:
            self._remove(node)

    def _remove(self, node: Node) -> None:
        if node not in self.graph:
            return
        before = self._drop_out_edges(node)
        if self.graph.in_degree(node):
            self._add_placeholder(node)
        else:
            self.graph.remove_node(node)
        self._prune(before)

    def _add_placeholder(self, node: Node) -> None:
        self.graph.add_node(
            node, type=node[0], key=node[1], state=None, project=None, placeholder=True
        )

    def _drop_out_edges(self, node: Node) -> set[Node]:
        if node not in self.graph:
            return set()
        targets = set(self.graph.successors(node))
        self.graph.remove_edges_from(list(self.graph.out_edges(node, keys=True)))
        return targets

    def _prune(self, nodes: Iterable[Node]) -> None:
        for node in nodes:
            if (
                node in self.graph
                and self.graph.nodes[node]["placeholder"]
                and self.graph.degree(node) == 0
            ):
                self.graph.remove_node(node)

    # -- reading ---------------------------------------------------------

    def states(self, *, placeholders: bool = False) -> dict[Node, str | None]:
        """``{(type, key): state}`` of the entities (placeholders left out unless asked)."""
        with self.lock:
            return {
                node: data["state"]
                for node, data in self.graph.nodes(data=True)
                if placeholders or not data["placeholder"]
            }

    def edges(self) -> set[Edge]:
        """Every edge as ``(from, to, relation)``."""
        with self.lock:
            return {(src, dst, rel) for src, dst, rel in self.graph.edges(keys=True)}

    def instances_on_down_hosts(self) -> list[str]:
        """Keys of the instances whose parent host is down (``down`` or ``down-disabled``)."""
        with self.lock:
            found = []
            for src, dst, rel in self.graph.edges(keys=True):
                host = self.graph.nodes[dst]
                if (
                    rel == PARENT
                    and src[0] == INSTANCE
                    and host["type"] == HOST
                    and (host["state"] or "").startswith("down")
                ):
                    found.append(src[1])
            return sorted(found)

    def summary(self) -> list[str]:
        """Lines: totals, then per type its count by state, then instances on down hosts."""
        by_type: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        with self.lock:
            placeholders = 0
            for _, data in self.graph.nodes(data=True):
                if data["placeholder"]:
                    placeholders += 1
                else:
                    by_type[data["type"]][str(data["state"])] += 1
            entities = self.graph.number_of_nodes() - placeholders
            lines = [
                f"== summary: {entities} entities, {self.graph.number_of_edges()} edges, "
                f"{placeholders} placeholders =="
            ]
        for type_, states in sorted(by_type.items()):
            detail = ", ".join(f"{state}: {n}" for state, n in sorted(states.items()))
            lines.append(f"{type_}: {sum(states.values())} ({detail})")
        lines.append(f"instances on down hosts: {len(self.instances_on_down_hosts())}")
        return lines


def parse_args(argv: list[str]) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf.register_cli_opts(CLI_OPTS)
    opts.register_opts(conf)
    conf(argv, project=opts.PROJECT)
    return conf


def run(conf: cfg.ConfigOpts, graph: TopologyGraph, done: threading.Event) -> None:
    """Follow the stream and print summaries until ``done``."""
    wake = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: wake.set())
    handle = client.watch(conf, conf.type or None, graph.apply, pool=conf.pool)
    try:
        print(f"synced: {len(graph.states())} entities", flush=True)
        every = conf.summary_every
        due = time.monotonic() + every if every else None
        while not done.is_set():
            # Short waits: the signal handlers run between them.
            if wake.wait(0.2) or (due is not None and time.monotonic() >= due):
                wake.clear()
                print("\n".join(graph.summary()), flush=True)
                due = time.monotonic() + every if every else None
    finally:
        handle.stop()


def main(argv: list[str] | None = None) -> int:
    conf = parse_args(list(sys.argv[1:] if argv is None else argv))
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        run(conf, TopologyGraph(), done)
    except Exception as exc:  # noqa: BLE001 - an example's one clear line, not a traceback
        print(f"graph_consumer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
