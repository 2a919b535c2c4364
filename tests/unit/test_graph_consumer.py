"""The example graph consumer's TopologyGraph: nodes, edges and placeholders per change."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from synchronizer.model import Action, Change, Entity, Ref, Relation, Synced

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "graph_consumer.py"
_spec = importlib.util.spec_from_file_location("graph_consumer", EXAMPLE)
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)

VM, HOST, VOL = ("nova.instance", "vm"), ("nova.host", "h1"), ("cinder.volume", "v1")


def host(key: str = "h1", state: str = "up") -> Entity:
    return Entity("nova.host", key, state=state)


def vm(on: str = "h1", state: str = "ACTIVE", volumes: tuple[str, ...] = ()) -> Entity:
    return Entity(
        "nova.instance",
        "vm",
        state=state,
        parent=Ref("nova.host", on),
        relations=tuple(Relation("attached", "cinder.volume", v) for v in volumes),
    )


def apply(graph, *items: tuple[str, Entity]) -> None:
    for action, entity in items:
        graph.apply(Change(Action(action), entity))


@pytest.mark.parametrize(
    ("changes", "states", "edges"),
    [
        (
            [("snapshot", host()), ("create", vm(volumes=("v1",)))],
            {HOST: "up", VM: "ACTIVE", VOL: None},
            {(VM, HOST, "parent"), (VM, VOL, "attached")},
        ),
        (
            [("create", vm(volumes=("v1",))), ("update", vm())],
            {VM: "ACTIVE", HOST: None},
            {(VM, HOST, "parent")},
        ),
        (
            [("create", host()), ("create", vm()), ("delete", host())],
            {VM: "ACTIVE", HOST: None},
            {(VM, HOST, "parent")},
        ),
        (
            [("create", vm()), ("update", vm(on="h2", state="SHUTOFF")), ("create", host())],
            {VM: "SHUTOFF", ("nova.host", "h2"): None, HOST: "up"},
            {(VM, ("nova.host", "h2"), "parent")},
        ),
        (
            [("create", host()), ("create", vm()), ("delete", vm()), ("delete", host())],
            {},
            set(),
        ),
    ],
    ids=["placeholder-target", "edge-dropped", "deleted-parent", "moved", "all-gone"],
)
def test_changes_give_nodes_and_edges(changes, states, edges):
    """A node holds its newest state; out-edges follow it; unreferenced placeholders go."""
    graph = example.TopologyGraph()
    apply(graph, *changes)
    assert graph.states(placeholders=True) == states
    assert graph.edges() == edges
    assert graph.states() == {n: s for n, s in states.items() if s is not None}


def test_summary_counts_states_and_instances_on_down_hosts():
    """The summary counts entities by type and state and instances on down hosts."""
    graph = example.TopologyGraph()
    apply(graph, ("create", host(state="down-disabled")), ("create", vm(state="SHUTOFF")))
    graph.apply(Synced(None, 2))
    assert graph.synced.is_set()
    assert graph.instances_on_down_hosts() == ["vm"]
    assert graph.summary()[1:] == [
        "nova.host: 1 (down-disabled: 1)",
        "nova.instance: 1 (SHUTOFF: 1)",
        "instances on down hosts: 1",
    ]
    apply(graph, ("update", host(state="up")))
    assert graph.summary()[-1] == "instances on down hosts: 0"


def test_a_relist_rebuilds_the_graph_from_the_new_view():
    """After a Relist marker, what the new view leaves out is gone from the graph at Synced.

    The stream could not say what changed (the daemon came back with another
    epoch, or changes were lost past its history): the view is the truth, and
    the graph stays readable, as it was, until that view is complete.
    """
    from synchronizer.outputs.client import Relist

    graph = example.TopologyGraph()
    apply(graph, ("snapshot", host()), ("snapshot", host("h2")), ("snapshot", vm(volumes=("v1",))))
    graph.apply(Synced(None, 3))
    graph.apply(Relist("the daemon's state changed epoch"))
    assert not graph.synced.is_set()  # the graph is being rebuilt
    apply(graph, ("snapshot", host(state="down")), ("snapshot", vm()))
    assert graph.states()[("nova.host", "h2")] == "up"  # the old view until the new one is in
    graph.apply(Synced(None, 2))
    assert graph.synced.is_set()
    assert graph.states(placeholders=True) == {HOST: "down", VM: "ACTIVE"}
    assert graph.edges() == {(VM, HOST, "parent")}
    apply(graph, ("create", host("h3")))  # live again
    assert graph.states()[("nova.host", "h3")] == "up"


def test_a_relist_of_some_types_leaves_the_others_alone():
    """A fleet's partition relists alone: its Synced names its types, the sweep keeps to them."""
    from synchronizer.outputs.client import Relist

    graph = example.TopologyGraph()
    apply(graph, ("snapshot", host()), ("snapshot", host("h2")), ("snapshot", vm()))
    graph.apply(Synced(None, 3))
    graph.apply(Relist("the stream lost changes after seq 3, no longer kept"))
    apply(graph, ("snapshot", host("h2")))
    graph.apply(Synced(("nova.host",), 1))
    assert graph.states(placeholders=True) == {VM: "ACTIVE", HOST: None, ("nova.host", "h2"): "up"}
