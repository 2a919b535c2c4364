"""Coalescing per key keeps a lagging subscriber's queue bounded and true."""

import pytest

from synchronizer.dispatch.coalesce import CoalescingQueue, merge
from synchronizer.model import Action, Change, Entity, Synced

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


def test_a_prefilled_snapshot_coalesces_with_later_changes():
    """A snapshot prefilled in one pass behaves as if put item by item."""
    q = CoalescingQueue()
    q.prefill([ch(A.SNAPSHOT, "a"), ch(A.SNAPSHOT, "b"), ch(A.SNAPSHOT, "c")], Synced(None, 3))
    q.put(ch(A.UPDATE, "b", state="new"))
    q.put(ch(A.DELETE, "c"))
    q.put(ch(A.CREATE, "d"))
    items = q.get_batch(10)
    assert [getattr(i, "key", "synced") for i in items] == ["a", "b", "synced", "d"]
    assert items[1].action is A.SNAPSHOT
    assert items[1].entity.state == "new"
    assert q.coalesced == 2


def test_prefill_on_a_busy_queue_is_put_many():
    """Prefilling a queue that already holds changes merges as put_many would."""
    snapshot = [ch(A.SNAPSHOT, "a", state="snap"), ch(A.SNAPSHOT, "b")]
    queues = CoalescingQueue(), CoalescingQueue()
    for q in queues:
        q.put(ch(A.UPDATE, "a", state="pending"))
        q.put(ch(A.UPDATE, "c"))
    queues[0].prefill(snapshot, Synced(None, 2))
    queues[1].put_many([*snapshot, Synced(None, 2)])
    first, second = ([(i.action, getattr(i, "key", None)) for i in q.get_batch(10)] for q in queues)
    assert first == second
    assert first[-1] == ("synced", None)


def test_a_snapshot_listing_an_entity_twice_is_refused():
    """Two snapshot items of one key are a caller's bug, not something to merge."""
    q = CoalescingQueue()
    with pytest.raises(ValueError, match="twice"):
        q.prefill([ch(A.SNAPSHOT, "a"), ch(A.SNAPSHOT, "a")], Synced(None, 2))


def test_get_batch_times_out_empty():
    """An empty queue returns an empty batch after the timeout."""
    assert CoalescingQueue().get_batch(10, timeout=0.01) == []
