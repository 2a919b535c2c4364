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
