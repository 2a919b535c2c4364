"""Coalescing per key keeps a lagging subscriber's queue bounded and true."""

import pytest

from synchronizer.coalesce import CoalescingQueue, merge
from synchronizer.entity import Action, Change, Entity, Synced

A = Action


def ch(action, key="k", state="s"):
    return Change(action, Entity("t", key, state=state))


@pytest.mark.parametrize(
    ("pending", "new", "result"),
    [
        (A.SNAPSHOT, A.UPDATE, A.SNAPSHOT),
        (A.SNAPSHOT, A.DELETE, None),
        (A.CREATE, A.UPDATE, A.CREATE),
        (A.CREATE, A.DELETE, None),
        (A.UPDATE, A.UPDATE, A.UPDATE),
        (A.UPDATE, A.DELETE, A.DELETE),
        (A.DELETE, A.CREATE, A.UPDATE),
    ],
)
def test_merge_table(pending, new, result):
    """Merging two changes of a key gives the single equivalent change."""
    merged = merge(ch(pending, state="old"), ch(new, state="new"))
    if result is None:
        assert merged is None
    else:
        assert merged.action is result
        assert merged.entity.state == "new"


def test_queue_is_bounded_by_distinct_keys():
    """10,000 changes over 10 keys leave at most 10 pending items."""
    q = CoalescingQueue()
    for i in range(10_000):
        q.put(ch(A.UPDATE, key=f"k{i % 10}", state=str(i)))
    assert len(q) == 10
    assert q.coalesced == 9_990
    states = {c.key: c.entity.state for c in q.get_batch(100)}
    assert states["k3"] == "9993"


def test_snapshot_items_stay_before_the_synced_marker():
    """An update to a pending snapshot item keeps it before the synced marker."""
    q = CoalescingQueue()
    q.put_many([ch(A.SNAPSHOT, "a"), ch(A.SNAPSHOT, "b"), Synced(None, 2)])
    q.put(ch(A.UPDATE, "a", state="new"))
    items = q.get_batch(10)
    assert [getattr(i, "key", "synced") for i in items] == ["a", "b", "synced"]
    assert items[0].action is A.SNAPSHOT
    assert items[0].entity.state == "new"


def test_get_batch_times_out_empty():
    """An empty queue returns an empty batch after the timeout."""
    assert CoalescingQueue().get_batch(10, timeout=0.01) == []
