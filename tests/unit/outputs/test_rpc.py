"""The RPC view endpoint: a consistent snapshot, handed out in chunks."""

from __future__ import annotations

import socket
import time

import pytest

from synchronizer.model import Action, Change
from synchronizer.outputs import rpc
from tests.unit.outputs.common import change, seeded


def keys(n: int) -> list[str]:
    return [f"k{i:03d}" for i in range(n)]


def read_all(endpoint: rpc.ViewEndpoint, meta: dict) -> list[list[dict]]:
    return [endpoint.snapshot_chunk({}, meta["id"], i) for i in range(meta["chunks"])]


@pytest.mark.parametrize(
    ("count", "chunk_size", "sizes"),
    [
        (0, 3, []),
        (1, 3, [1]),
        (3, 3, [3]),
        (4, 3, [3, 1]),
        (7, 3, [3, 3, 1]),
        (5, 1, [1, 1, 1, 1, 1]),
        (5, 1000, [5]),
    ],
)
def test_snapshot_comes_in_chunks_of_at_most_chunk_size(count, chunk_size, sizes):
    """begin announces count and chunks; the chunks hold each entity once, chunk_size at most."""
    dispatcher = seeded({"test.thing": keys(count)})
    endpoint = rpc.ViewEndpoint(dispatcher, chunk_size)
    meta = endpoint.snapshot_begin({}, None)
    assert (meta["count"], meta["chunks"]) == (count, len(sizes))
    parts = read_all(endpoint, meta)
    assert [len(p) for p in parts] == sizes
    got = [Change.from_dict(d).entity for part in parts for d in part]
    assert sorted(e.key for e in got) == keys(count)
    assert sorted(got, key=lambda e: e.key) == sorted(dispatcher.get_all(), key=lambda e: e.key)


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (None, {"a.x", "a.y", "b.z"}),
        ([], {"a.x", "a.y", "b.z"}),
        (["a.x"], {"a.x"}),
        (["a.x", "b.z"], {"a.x", "b.z"}),
        (["nope"], set()),
    ],
)
def test_snapshot_holds_only_the_types_asked_for(types, expected):
    """A snapshot of some types holds those types' entities only (no types: every type)."""
    dispatcher = seeded({"a.x": ["1", "2"], "a.y": ["1"], "b.z": ["3"]})
    endpoint = rpc.ViewEndpoint(dispatcher, 2)
    meta = endpoint.snapshot_begin({}, types)
    items = [d for part in read_all(endpoint, meta) for d in part]
    assert {d["type"] for d in items} == expected
    assert meta["count"] == len(items)


def test_snapshot_is_a_copy_taken_at_begin_with_the_seq_it_covers():
    """Changes dispatched after begin are not in the snapshot, and carry a seq above its seq."""
    dispatcher = seeded({"test.thing": ["a", "b"]})
    endpoint = rpc.ViewEndpoint(dispatcher, 1)
    meta = endpoint.snapshot_begin({}, None)
    later = dispatcher.dispatch(
        [change("a", "down", ts="2026-01-02T00:00:00.000000Z"), change("c", action=Action.CREATE)]
    )
    items = [d for part in read_all(endpoint, meta) for d in part]
    assert {(d["key"], d["state"]) for d in items} == {("a", "up"), ("b", "up")}
    assert all(d["seq"] <= meta["seq"] for d in items)
    assert [c.key for c in later] == ["a", "c"]
    assert all(c.seq > meta["seq"] for c in later)


def test_begin_names_this_server_and_a_fresh_id_each_time():
    """begin returns this host's name (to pin the chunks to it) and a new id per snapshot."""
    endpoint = rpc.ViewEndpoint(seeded({"test.thing": ["a"]}), 10)
    first, second = endpoint.snapshot_begin({}, None), endpoint.snapshot_begin({}, None)
    assert first["server"] == second["server"] == socket.gethostname()
    assert first["id"] != second["id"]


def test_a_chunk_past_the_last_is_empty():
    """Asking for a chunk beyond the announced ones returns no entity."""
    endpoint = rpc.ViewEndpoint(seeded({"test.thing": keys(3)}), 2)
    meta = endpoint.snapshot_begin({}, None)
    assert endpoint.snapshot_chunk({}, meta["id"], meta["chunks"]) == []


def test_an_ended_or_unknown_snapshot_is_refused():
    """After end (or for an id never issued) chunk raises KeyError; end itself is idempotent."""
    endpoint = rpc.ViewEndpoint(seeded({"test.thing": keys(3)}), 2)
    meta = endpoint.snapshot_begin({}, None)
    other = endpoint.snapshot_begin({}, None)
    endpoint.snapshot_end({}, meta["id"])
    endpoint.snapshot_end({}, meta["id"])
    endpoint.snapshot_end({}, "never-issued")
    for sid in (meta["id"], "never-issued"):
        with pytest.raises(KeyError):
            endpoint.snapshot_chunk({}, sid, 0)
    assert len(endpoint.snapshot_chunk({}, other["id"], 0)) == 2


def test_an_abandoned_snapshot_expires(monkeypatch):
    """A snapshot never ended is dropped once older than the TTL, when the next one begins."""
    monkeypatch.setattr(rpc, "SNAPSHOT_TTL", 0.05)
    endpoint = rpc.ViewEndpoint(seeded({"test.thing": keys(2)}), 1)
    abandoned = endpoint.snapshot_begin({}, None)
    time.sleep(0.1)
    fresh = endpoint.snapshot_begin({}, None)
    with pytest.raises(KeyError):
        endpoint.snapshot_chunk({}, abandoned["id"], 0)
    assert len(endpoint.snapshot_chunk({}, fresh["id"], 0)) == 1


def test_a_young_snapshot_survives_other_begins():
    """Snapshots younger than the TTL stay readable however many others begin."""
    endpoint = rpc.ViewEndpoint(seeded({"test.thing": keys(2)}), 1)
    first = endpoint.snapshot_begin({}, None)
    for _ in range(5):
        endpoint.snapshot_begin({}, None)
    assert [len(p) for p in read_all(endpoint, first)] == [1, 1]
