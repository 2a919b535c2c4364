"""A fleet's watcher: one gate per partition behind one router, one Synced, a position each."""

from __future__ import annotations

from synchronizer.model import Action, Change, Entity, Synced
from synchronizer.outputs import client, fleet_client

PARTITIONS = {
    "nova": {"epoch": "n1", "seq": 1, "types": ["nova.instance"]},
    "cinder": {"epoch": "c1", "seq": 1, "types": ["cinder.volume"]},
}


class Fleet:
    """The partitions' views and histories, as the members would answer them."""

    def __init__(self) -> None:
        self.views = {
            "nova.instance": client.View([Entity("nova.instance", "a")], 1, "n1"),
            "cinder.volume": client.View([Entity("cinder.volume", "v")], 1, "c1"),
        }

    def gate(self, epoch, held, deliver):
        return client._Gate(
            deliver, held, view=lambda: self.views[held[0]], history=lambda position: None
        )


def change(type_: str, key: str, seq: int, state: str = "ACTIVE") -> Change:
    return Change(Action.UPDATE, Entity(type_, key, state=state), seq=seq)


def opened(types=None):
    fleet, got = Fleet(), []
    streams = fleet_client.Streams(got.append, types, fleet.gate, PARTITIONS)
    streams.open(None)
    return fleet, streams, got


def test_the_views_of_all_partitions_end_in_one_synced():
    """Every partition's view, then one Synced counting them all."""
    _, _, got = opened()
    assert sorted(i.entity.key for i in got[:-1]) == ["a", "v"]
    assert got[-1] == Synced(None, 2)


def test_changes_go_to_their_partition_and_repeats_are_dropped():
    """Each epoch's seqs are its own: the same seq in two partitions is two changes."""
    _, streams, got = opened()
    streams.offer(change("nova.instance", "a", 2), "n1")
    streams.offer(change("cinder.volume", "v", 2), "c1")
    streams.offer(change("nova.instance", "a", 2), "n1")  # a new owner's re-send
    assert [(i.entity.type, i.seq) for i in got[3:]] == [("nova.instance", 2), ("cinder.volume", 2)]
    assert streams.position == {"n1": 2, "c1": 2}


def test_only_the_watched_partitions_have_gates():
    """A watcher of nova types ignores cinder's stream."""
    _, streams, got = opened(("nova.instance",))
    streams.offer(change("cinder.volume", "v", 2), "c1")
    assert got[-1] == Synced(("nova.instance",), 1)
    assert streams.position == {"n1": 1}


def test_a_partition_started_anew_relists_only_itself():
    """A change of a new epoch: that partition's gate relists; the other keeps its position."""
    fleet, streams, got = opened()
    fleet.views["nova.instance"] = client.View([Entity("nova.instance", "b")], 1, "n2")
    streams.offer(change("nova.instance", "b", 1), "n2")
    assert isinstance(got[3], client.Relist)
    assert got[4].entity.key == "b"
    assert streams.position == {"n2": 1, "c1": 1}
    streams.offer(change("nova.instance", "b", 2, "SHUTOFF"), "n2")
    assert got[-1].entity.state == "SHUTOFF"


def test_a_partition_that_appears_after_the_start_is_watched_from_its_view():
    """A change of a type no partition had at the start: the fleet is asked again and its
    new partition's view arrives (snapshot, Synced for its types), then its changes."""
    fleet, got = Fleet(), []
    later = {**PARTITIONS}
    asked = []

    def refresh():
        asked.append(1)
        return later

    streams = fleet_client.Streams(
        got.append, None, fleet.gate, {"nova": PARTITIONS["nova"]}, refresh=refresh
    )
    streams.open(None)
    assert got[-1] == Synced(None, 1)
    streams.offer(change("cinder.volume", "v", 2, "in-use"), "c1")
    assert asked == [1]
    assert got[-3].action is Action.SNAPSHOT
    assert got[-3].entity.key == "v"
    assert got[-2] == Synced(("cinder.volume",), 1)
    assert got[-1].entity.state == "in-use"
    assert streams.position == {"n1": 1, "c1": 2}


def test_a_type_the_fleet_does_not_know_asks_again_only_after_a_while():
    """An unknown type asks the fleet once, not on every change (nothing is made up)."""
    fleet, got, asked = Fleet(), [], []

    def refresh():
        asked.append(1)
        return PARTITIONS

    streams = fleet_client.Streams(got.append, None, fleet.gate, PARTITIONS, refresh=refresh)
    streams.open(None)
    before = list(got)
    for seq in (2, 3, 4):
        streams.offer(change("heat.stack", "s", seq), "h1")
    assert asked == [1]
    assert got == before


def test_a_watcher_of_some_types_never_asks_for_others():
    fleet, got, asked = Fleet(), [], []
    streams = fleet_client.Streams(
        got.append, ("nova.instance",), fleet.gate, PARTITIONS, refresh=lambda: asked.append(1)
    )
    streams.open(None)
    streams.offer(change("heat.stack", "s", 2), "h1")
    assert asked == []


def test_two_clouds_partitions_of_the_same_types_relist_apart():
    """east.nova started anew: east's gate relists (by the change's cloud), west's keeps on."""
    partitions = {
        "east.nova": {"epoch": "e1", "seq": 1, "types": ["nova.instance"]},
        "west.nova": {"epoch": "w1", "seq": 1, "types": ["nova.instance"]},
    }
    views = {
        "e1": client.View([Entity("nova.instance", "east/a", cloud="east")], 1, "e1"),
        "w1": client.View([Entity("nova.instance", "west/a", cloud="west")], 1, "w1"),
    }
    made: dict[str, client._Gate] = {}

    def gate(epoch, held, deliver):
        made[epoch] = client._Gate(
            deliver, held, view=lambda: views[epoch], history=lambda position: None
        )
        return made[epoch]

    got: list = []
    streams = fleet_client.Streams(got.append, None, gate, partitions)
    streams.open(None)
    assert sorted(i.entity.key for i in got[:-1]) == ["east/a", "west/a"]
    views["e1"] = client.View([Entity("nova.instance", "east/b", cloud="east")], 1, "e2")
    anew = Change(Action.UPDATE, Entity("nova.instance", "east/b", cloud="east"), seq=1)
    streams.offer(anew, "e2")
    assert isinstance(got[3], client.Relist)
    assert [i.entity.key for i in got[4:5]] == ["east/b"]
    assert streams.position == {"e2": 1, "w1": 1}


class History(Fleet):
    """A fleet whose partitions keep a history: nova's has two changes after seq 1."""

    def gate(self, epoch, held, deliver):
        kept = {"n1": [change("nova.instance", "a", 2, "SHUTOFF")], "c1": []}

        def history(position):
            if position[0] not in kept:
                return None
            missed = [c for c in kept[position[0]] if c.seq > position[1]]
            return missed, max([position[1], *(c.seq for c in missed)])

        return client._Gate(deliver, held, view=lambda: self.views[held[0]], history=history)


def describe(item) -> tuple:
    if isinstance(item, Synced):
        return ("synced", item.types)
    if isinstance(item, client.Relist):
        return ("relist",)
    return (str(item.action), item.entity.key)


def test_a_resume_relists_with_a_marker_the_partitions_its_position_does_not_cover():
    """A saved fleet position without a partition's epoch (its stream started anew while
    the consumer was away): that partition relists as a live relist does, a Relist marker,
    its view and a Synced of its types only, so a consumer drops just what that view
    left out; the others resume from their history, with no view and no Synced."""
    got: list = []
    streams = fleet_client.Streams(got.append, None, History().gate, PARTITIONS)
    streams.open({"n1": 1, "c0": 5})  # c0: cinder's epoch before it started anew
    assert [describe(i) for i in got] == [
        ("update", "a"),
        ("relist",),
        ("snapshot", "v"),
        ("synced", ("cinder.volume",)),
    ]
    assert streams.position == {"n1": 2, "c1": 1}


def test_a_single_daemons_position_given_to_a_fleet_relists_every_partition_with_a_marker():
    """Moved from one daemon to a fleet: no partition's epoch is in the position."""
    got: list = []
    streams = fleet_client.Streams(got.append, None, History().gate, PARTITIONS)
    streams.open({})
    assert [describe(i) for i in got].count(("relist",)) == 2
    assert ("synced", ("nova.instance",)) in [describe(i) for i in got]
    assert ("synced", ("cinder.volume",)) in [describe(i) for i in got]
    assert ("synced", None) not in [describe(i) for i in got]
