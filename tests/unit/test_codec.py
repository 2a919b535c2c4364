"""The ledger's entry codec: told changes round-trip through compact entries."""

import datetime

import pytest

from synchronizer import fingerprint
from synchronizer.dispatch.codec import EntryCodec, Head
from synchronizer.model import Action, Change, Entity, Ref, Relation, Source

ENTITY = Entity(
    "nova.instance",
    "u1",
    state="ACTIVE",
    project="p1",
    parent=Ref("nova.host", "h1"),
    relations=(Relation("attached", "cinder.volume", "v1"),),
    properties={"name": "web-1", "nested": {"a": (1, 2.5, None)}},
    timestamp="2026-01-01T00:00:01.000000Z",
    source=Source("poll", "nova.instance"),
)


@pytest.mark.parametrize(
    "change",
    [
        Change(Action.CREATE, ENTITY, fingerprint.of(ENTITY), seq=3),
        Change(Action.UPDATE, ENTITY, fingerprint.of(ENTITY), final_state_unknown=True, seq=4),
        Change(Action.CREATE, ENTITY.replace(properties={"when": datetime.date(2026, 1, 1)}), 1),
        Change(Action.CREATE, ENTITY, 2**70),
    ],
    ids=["create", "flags", "object-value", "wide-fingerprint"],
)
def test_an_entry_decodes_to_the_change_it_encodes(change):
    """decode(encode(change)) is the change, bytes or (when it must be) the object kept."""
    codec = EntryCodec()
    entry = codec.encode(change)
    assert codec.decode(ENTITY.type, ENTITY.key, entry) == change
    head = Head(entry)
    assert (head.action, head.seq, head.fingerprint) == (
        change.action,
        change.seq,
        change.fingerprint,
    )


def test_a_tombstone_keeps_only_its_header():
    """With content=False the entry holds the action, seq and time, no state."""
    codec = EntryCodec()
    gone = Change(Action.DELETE, ENTITY, 0, seq=9)
    back = codec.decode(ENTITY.type, ENTITY.key, codec.encode(gone, content=False))
    assert (back.action, back.seq, back.entity.timestamp) == (Action.DELETE, 9, ENTITY.timestamp)
    assert back.entity.state is None


def test_retiming_changes_the_time_and_nothing_else():
    """An entry observed again reads back equal but for its timestamp."""
    codec = EntryCodec()
    told = Change(Action.CREATE, ENTITY, fingerprint.of(ENTITY), seq=5)
    entry = codec.encode(told)
    later = "2026-01-02T00:00:00.000000Z"
    again = codec.retime(ENTITY.type, ENTITY.key, entry, Head(entry), later)
    assert codec.decode(ENTITY.type, ENTITY.key, again) == told.replace(
        entity=ENTITY.replace(timestamp=later)
    )


def test_the_live_view_skips_tombstones():
    """live() decodes every entry but the deletes, optionally as another action."""
    codec = EntryCodec()
    a = Change(Action.CREATE, ENTITY, 1, seq=1)
    b = Change(Action.DELETE, ENTITY.replace(key="u2"), 0, seq=2)
    items = [("u1", codec.encode(a)), ("u2", codec.encode(b, content=False))]
    assert list(codec.live(ENTITY.type, items, {})) == [a]
    (snap,) = codec.live(ENTITY.type, items, {}, Action.SNAPSHOT)
    assert snap == a.replace(action=Action.SNAPSHOT)
