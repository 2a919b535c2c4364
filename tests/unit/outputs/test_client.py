"""The out-of-process client: the gate's ordering, the stream endpoint, and round trips.

The round trips run the daemon's real parts in-process (a dispatcher, the
RPC view server, the message sink) on oslo.messaging's in-memory ``fake:``
transport, and the client's real ``get_all``/``subscribe``/``watch``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from synchronizer.dispatch.subscriber import Subscription
from synchronizer.model import Action, Change, Entity, Synced
from synchronizer.outputs import client, rpc, sinks
from tests.unit.outputs.common import bus_conf, change, seeded

# -- the gate -------------------------------------------------------------

EPOCH = "e1"


class Daemonish:
    """What a gate asks the daemon: its view and its history (plain data, no bus)."""

    def __init__(self, view_keys: list[str], view_seq: int, history: list[Change] | None = None):
        self.view = client.View([Entity("test.thing", k) for k in view_keys], view_seq, EPOCH)
        self.kept = history or []  # the daemon's history; None answers: gone
        self.gone = False
        self.asked: list[tuple[str, int]] = []

    def history(self, position):
        self.asked.append(position)
        if self.gone or position[0] != EPOCH:
            return None
        missed = [c for c in self.kept if c.seq > position[1]]
        return missed, max([position[1], *(c.seq for c in self.kept)])


def gate_of(daemon: Daemonish, out: list, gap_wait: float = 0.05) -> client._Gate:
    return client._Gate(
        out.append,
        ("test.thing",),
        view=lambda: daemon.view,
        history=daemon.history,
        gap_wait=gap_wait,
    )


def describe(item) -> tuple:
    if isinstance(item, Synced):
        return ("synced", item.types, item.count)
    if isinstance(item, client.Relist):
        return ("relist",)
    return (item.action, item.key, item.seq)


def gated(buffered: list, live: list, view_seq: int = 10) -> list[tuple]:
    """Offer ``buffered``, open on the view, offer ``live``; what was delivered."""
    out: list = []
    gate = gate_of(Daemonish(["a", "b"], view_seq), out)
    for key, seq in buffered:
        gate.offer(change(key, seq=seq), EPOCH)
    assert out == []  # nothing passes before the view
    gate.open(None)
    for key, seq in live:
        gate.offer(change(key, seq=seq), EPOCH)
    gate.close()
    return [describe(item) for item in out]


SNAP = [("snapshot", "a", 0), ("snapshot", "b", 0), ("synced", ("test.thing",), 2)]
U = Action.UPDATE


@pytest.mark.parametrize(
    ("buffered", "live", "after_synced"),
    [
        pytest.param([], [], [], id="view only"),
        pytest.param([("c", 11), ("a", 12)], [], [(U, "c", 11), (U, "a", 12)], id="buffered"),
        pytest.param([("a", 9), ("a", 10), ("b", 11)], [], [(U, "b", 11)], id="covered by view"),
        pytest.param(
            [("a", 13), ("b", 11), ("a", 12)],
            [],
            [(U, "b", 11), (U, "a", 12), (U, "a", 13)],
            id="buffer replayed in seq order",
        ),
        pytest.param([], [("a", 5), ("a", 10)], [], id="live covered by view"),
        pytest.param(
            [], [("b", 12), ("a", 11)], [(U, "a", 11), (U, "b", 12)], id="live out of order"
        ),
        pytest.param([], [("a", 11), ("a", 11)], [(U, "a", 11)], id="repeat dropped"),
        pytest.param(
            [("a", 11)],
            [("a", 11), ("b", 12)],
            [(U, "a", 11), (U, "b", 12)],
            id="buffer, then live",
        ),
    ],
)
def test_gate_delivers_view_then_synced_then_the_stream_in_seq_order(buffered, live, after_synced):
    """Snapshots, then Synced, then each seq above the view's once, in seq order."""
    assert gated(buffered, live) == SNAP + after_synced


def test_changes_of_other_types_advance_the_position_unseen():
    """A change of a type not watched is not delivered, and does not hold later ones back."""
    out: list = []
    gate = gate_of(Daemonish([], 10), out)
    gate.open(None)
    gate.offer(change("x", type_="other.type", seq=11), EPOCH)
    gate.offer(change("a", seq=12), EPOCH)
    gate.close()
    assert [describe(i) for i in out][1:] == [(U, "a", 12)]
    assert gate.position == (EPOCH, 12)


def test_a_gap_that_stays_open_is_filled_from_the_history_in_order():
    """A lost seq is fetched from the daemon's history after gap_wait, and delivered in order."""
    lost = change("b", seq=12)
    daemon = Daemonish([], 10, history=[change("a", seq=11), lost, change("a", seq=13)])
    out: list = []
    gate = gate_of(daemon, out)
    gate.open(None)
    gate.offer(change("a", seq=11), EPOCH)
    gate.offer(change("a", seq=13), EPOCH)  # 12 never comes on the bus
    deadline = time.monotonic() + 3
    while gate.position[1] < 13 and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.close()
    assert [describe(i) for i in out][1:] == [(U, "a", 11), (U, "b", 12), (U, "a", 13)]
    assert daemon.asked == [(EPOCH, 11)]


def test_a_bookmark_beyond_the_position_reveals_a_lost_last_change():
    """A bookmark saying seq 12 exists, with 12 never received, makes the gate fetch it."""
    daemon = Daemonish([], 11, history=[change("b", seq=12)])
    out: list = []
    gate = gate_of(daemon, out)
    gate.open(None)
    gate.offer(client.Bookmark(EPOCH, 12), EPOCH)
    deadline = time.monotonic() + 3
    while gate.position[1] < 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.close()
    assert [describe(i) for i in out][1:] == [(U, "b", 12)]


def test_a_gap_the_history_no_longer_holds_relists():
    """When the history lost the gap, the callback gets Relist, the view, Synced, then goes on."""
    daemon = Daemonish(["a"], 10)
    out: list = []
    gate = gate_of(daemon, out)
    gate.open(None)
    daemon.gone = True
    daemon.view = client.View([Entity("test.thing", "a"), Entity("test.thing", "z")], 20, EPOCH)
    gate.offer(change("a", seq=15), EPOCH)  # 11..14 lost
    gate.offer(change("z", seq=21), EPOCH)
    deadline = time.monotonic() + 3
    while gate.relists == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    gate.close()
    assert [describe(i) for i in out][2:] == [
        ("relist",),
        ("snapshot", "a", 0),
        ("snapshot", "z", 0),
        ("synced", ("test.thing",), 2),
        (U, "z", 21),
    ]


def test_resuming_from_a_position_delivers_only_what_was_missed():
    """since=(epoch, seq) gives the history after seq, no view and no Synced, then live."""
    daemon = Daemonish(["a"], 0, history=[change("a", seq=6), change("b", seq=7)])
    out: list = []
    gate = gate_of(daemon, out)
    gate.offer(change("b", seq=7), EPOCH)  # buffered while resuming: a repeat
    gate.offer(change("c", seq=8), EPOCH)
    gate.open((EPOCH, 5))
    gate.close()
    assert [describe(i) for i in out] == [(U, "a", 6), (U, "b", 7), (U, "c", 8)]
    assert gate.position == (EPOCH, 8)
    assert gate.relists == 0


@pytest.mark.parametrize("since", [("another-epoch", 5), (EPOCH, 3), {EPOCH: 3, "other": 4}])
def test_a_position_from_another_epoch_or_older_than_the_history_relists(since):
    """A stale position gives a Relist marker, then the view and Synced, never an error.

    A fleet's position (one per partition) given to a single daemon's
    watcher is no position of its stream either.
    """
    daemon = Daemonish(["a"], 9)
    daemon.gone = isinstance(since, tuple) and since[0] == EPOCH
    out: list = []
    gate = gate_of(daemon, out)
    gate.open(since)
    gate.close()
    assert [describe(i) for i in out] == [
        ("relist",),
        ("snapshot", "a", 0),
        ("synced", ("test.thing",), 1),
    ]
    assert gate.position == (EPOCH, 9)


def test_a_change_from_another_epoch_relists():
    """The daemon's store was replaced (a new epoch): the watcher relists on its first change."""
    daemon = Daemonish(["a"], 10)
    out: list = []
    gate = gate_of(daemon, out)
    gate.open(None)
    daemon.view = client.View([Entity("test.thing", "b")], 3, "e2")
    gate.offer(change("b", seq=3), "e2")
    gate.close()
    assert [describe(i) for i in out][2:] == [
        ("relist",),
        ("snapshot", "b", 0),
        ("synced", ("test.thing",), 1),
    ]
    assert gate.position == ("e2", 3)


def test_gate_serialises_callbacks_from_concurrent_offers():
    """Changes offered from many listener threads reach the callback one at a time, in seq order."""
    busy = threading.Lock()
    overlaps: list[int] = []
    seen: list[int] = []

    def callback(item):
        if not busy.acquire(blocking=False):
            overlaps.append(1)
            return
        try:
            if isinstance(item, Change):
                seen.append(item.seq)
            time.sleep(0.0005)
        finally:
            busy.release()

    gate = client._Gate(
        callback, None, view=lambda: client.View([], 0, EPOCH), history=lambda p: ([], p[1])
    )
    gate.open(None)

    def offer_from(thread: int) -> None:
        for i in range(thread, 200, 4):
            gate.offer(change(f"k{i % 4}", seq=i + 1), EPOCH)

    threads = [threading.Thread(target=offer_from, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gate.close()
    assert overlaps == []
    assert seen == list(range(1, 201))


# -- the stream endpoint --------------------------------------------------

GOOD = change("a", seq=3).to_dict()
MALFORMED = [
    None,
    "not an object",
    [],
    {},
    {**GOOD, "action": "exploded"},
    {**GOOD, "type": ""},
    {**GOOD, "key": ""},
    {**GOOD, "seq": "three"},
    {**GOOD, "seq": [3]},
    {**GOOD, "seq": float("inf")},
    {**GOOD, "timestamp": "yesterday"},
    {**GOOD, "timestamp": 1e300},
    {**GOOD, "timestamp": 1e18},
    {**GOOD, "properties": 5},
    {**GOOD, "parent": "host-1"},
    {**GOOD, "relations": [1]},
    {**GOOD, "source": {"kind": "poll"}},
]


@pytest.mark.parametrize("payload", MALFORMED)
def test_stream_endpoint_acknowledges_and_drops_a_malformed_change(caplog, payload):
    """A payload that is not a change is logged as a warning, acknowledged and not delivered."""
    got: list[Change] = []
    endpoint = client._StreamEndpoint(None, got.append)
    with caplog.at_level(logging.WARNING, logger="synchronizer.outputs.client"):
        result = endpoint.info({}, "synchronizer.h", "entity.update", payload, {})
    assert result == client.HANDLED
    assert got == []
    assert any("malformed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("types", "delivered"),
    [(None, ["a.x", "b.y"]), (frozenset({"a.x"}), ["a.x"]), (frozenset(), [])],
)
def test_stream_endpoint_delivers_the_types_asked_for(types, delivered):
    """Only changes of the subscribed types reach the callback (None: all types)."""
    got: list[Change] = []
    endpoint = client._StreamEndpoint(types, got.append)
    for type_ in ("a.x", "b.y"):
        sent = change("k", type_=type_, seq=4)
        assert endpoint.info({}, "p", "entity.update", sent.to_dict(), {}) == client.HANDLED
    assert [c.type for c in got] == delivered
    assert all((c.key, c.seq, c.action) == ("k", 4, Action.UPDATE) for c in got)


# -- round trips on the fake transport -------------------------------------


class Daemonside:
    """The daemon's parts a remote consumer talks to: view server and message sink."""

    def __init__(self, conf, dispatcher) -> None:
        self.conf = conf
        self.dispatcher = dispatcher
        self.server = rpc.build_server(conf, dispatcher)
        self.sink = sinks.MessageSink(conf)
        self.sink_sub = Subscription(None, self.sink, name="message")
        dispatcher.add(self.sink_sub, snapshot=False)
        self.sink_sub.start()
        self.server.start()

    def publish(self, *changes: Change) -> list[Change]:
        told = self.dispatcher.dispatch(changes)
        assert self.sink_sub.wait_idle(5)
        return told

    def stop(self) -> None:
        self.server.stop()
        self.server.wait()
        self.sink_sub.close()
        self.sink.close()


@pytest.fixture
def daemon(tmp_path):
    conf = bus_conf(tmp_path, "chunk_size = 2")
    side = Daemonside(conf, seeded({"a.x": ["1", "2", "3"], "b.y": ["4"]}))
    yield side
    side.stop()


class Collected:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list = []

    def __call__(self, item) -> None:
        with self.lock:
            self.items.append(item)

    def wait(self, predicate, timeout: float = 5.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self.items):
                    return list(self.items)
            time.sleep(0.02)
        with self.lock:
            return list(self.items)


@pytest.mark.parametrize(
    ("types", "keys"),
    [(None, ["1", "2", "3", "4"]), (["a.x"], ["1", "2", "3"]), (["b.y", "c.z"], ["4"])],
)
def test_get_all_returns_the_daemons_view_over_rpc(daemon, types, keys):
    """get_all gathers every chunk of the daemon's view of those types, with the seq it covers."""
    view = client.get_all(daemon.conf, types, timeout=10)
    assert sorted(e.key for e in view.entities) == keys
    assert sorted(view.entities, key=lambda e: e.key) == sorted(
        daemon.dispatcher.get_all(types), key=lambda e: e.key
    )
    (later,) = daemon.dispatcher.dispatch([change("5", type_="a.x", action=Action.CREATE)])
    assert later.seq > view.seq


def test_get_all_without_a_daemon_fails_within_its_timeout(tmp_path):
    """With nobody serving the view, get_all raises an error naming the topic after its timeout."""
    conf = bus_conf(tmp_path)
    started = time.monotonic()
    with pytest.raises(Exception, match=conf.rpc_topic):
        client.get_all(conf, None, timeout=1)
    assert time.monotonic() - started < 5


def test_subscribe_receives_published_changes_of_its_types_until_stopped(daemon):
    """subscribe calls back with each published change of its types; after stop() nothing more."""
    got = Collected()
    handle = client.subscribe(daemon.conf, ["a.x"], got, pool="unit-sub")
    try:
        told = daemon.publish(
            change("1", "down", type_="a.x", ts="2026-01-02T00:00:00.000000Z"),
            change("4", "down", type_="b.y", ts="2026-01-02T00:00:00.000000Z"),
            change("9", type_="a.x", action=Action.CREATE),
        )
        items = got.wait(lambda items: len(items) >= 2)
    finally:
        handle.stop()
    expected = [(c.action, c.type, c.key, c.seq, c.entity) for c in told if c.type == "a.x"]
    assert sorted((c.action, c.type, c.key, c.seq, c.entity) for c in items) == sorted(expected)
    daemon.publish(change("2", "down", type_="a.x", ts="2026-01-02T00:00:00.000000Z"))
    assert len(got.wait(lambda items: len(items) > 2, timeout=0.3)) == 2


def test_watch_delivers_view_then_synced_then_live_changes(daemon):
    """watch gives the view as snapshots, one Synced, then the changes made after it, once each."""
    got = Collected()
    handle = client.watch(daemon.conf, ["a.x"], got, pool="unit-watch")
    try:
        synced_at = len(got.wait(lambda items: any(isinstance(i, Synced) for i in items)))
        told = daemon.publish(
            change("2", "down", type_="a.x", ts="2026-01-02T00:00:00.000000Z"),
            change("4", "down", type_="b.y", ts="2026-01-02T00:00:00.000000Z"),
            change("3", type_="a.x", action=Action.DELETE, ts="2026-01-02T00:00:00.000000Z"),
        )
        items = got.wait(lambda items: len(items) >= synced_at + 2)
    finally:
        handle.stop()
    view, synced, live = items[: synced_at - 1], items[synced_at - 1], items[synced_at:]
    assert sorted((c.action, c.key) for c in view) == [("snapshot", k) for k in ("1", "2", "3")]
    assert (synced.types, synced.count) == (("a.x",), 3)
    assert sorted((c.action, c.key, c.seq) for c in live) == sorted(
        (c.action, c.key, c.seq) for c in told if c.type == "a.x"
    )


def test_rpc_server_names_are_stable_per_state_and_distinct_between_daemons(tmp_path):
    """Two daemons on one host get their own direct queues; a restart keeps its queue's name."""
    one = bus_conf(tmp_path, f"state_path = {tmp_path / 'one.db'}")
    again = bus_conf(tmp_path, f"state_path = {tmp_path / 'one.db'}")
    other = bus_conf(tmp_path, f"state_path = {tmp_path / 'other.db'}")
    # The epoch does not name a durable state's daemon: its file does.
    assert rpc.server_name(one, "e1") == rpc.server_name(again, "e2")
    assert rpc.server_name(one, "e1") != rpc.server_name(other, "e1")
    assert rpc.server_name(one, "e1").startswith(socket.gethostname() + "-")


def test_two_memory_state_daemons_on_one_config_each_answer_for_their_own_view(tmp_path):
    """``state = memory`` has no file to name a daemon by: its direct queue is its own.

    Two such daemons on one configuration used to share a server name, so
    a snapshot's chunks, pinned to the daemon that took it, were consumed
    by either: a view came back mixed, or a chunk of a snapshot the other
    daemon never took failed.
    """
    conf = bus_conf(tmp_path, "state = memory", "chunk_size = 1")
    sides = [Daemonside(conf, seeded({"a.x": [f"{name}{i}" for i in range(6)]})) for name in "pq"]
    try:
        for _ in range(4):
            keys = sorted(e.key for e in client.get_all(conf, ["a.x"], timeout=5).entities)
            assert keys in ([f"p{i}" for i in range(6)], [f"q{i}" for i in range(6)])
    finally:
        for side in sides:
            side.stop()
