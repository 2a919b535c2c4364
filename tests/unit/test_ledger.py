"""The ledger's delivery rules."""

import pytest

from synchronizer import fingerprint
from synchronizer.entity import Action, Change, Entity, Source
from synchronizer.ledger import Ledger

POLL = Source("poll", "c")
PUSH = Source("push", "n")


def ch(action, key="k", state="ACTIVE", ts="2026-01-01T00:00:01Z", source=POLL):
    e = Entity("t", key, state=state, timestamp=ts, source=source)
    fp = 0 if action is Action.DELETE else fingerprint.of(e)
    return Change(action, e, fp)


def test_repeat_is_dropped():
    """A change repeating what was told (same fingerprint) is dropped."""
    ledger = Ledger()
    assert ledger.admit(ch(Action.CREATE)) is not None
    assert ledger.admit(ch(Action.UPDATE, ts="2026-01-01T00:00:02Z", source=PUSH)) is None


def test_older_state_is_dropped():
    """A state older than the newest delivered for the key is dropped."""
    ledger = Ledger()
    ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:05Z"))
    assert ledger.admit(ch(Action.UPDATE, state="ERROR", ts="2026-01-01T00:00:04Z")) is None
    assert ledger.get("t", "k").entity.state == "ACTIVE"


def test_confirming_poll_advances_the_clock():
    """After a poll confirms a state at t2, a delayed push from t1 < t2 is dropped."""
    ledger = Ledger()
    ledger.admit(ch(Action.UPDATE, ts="2026-01-01T00:00:01Z", source=PUSH))
    ledger.admit(ch(Action.UPDATE, ts="2026-01-01T00:00:03Z", source=POLL))
    late = ch(Action.UPDATE, state="SHUTOFF", ts="2026-01-01T00:00:02Z", source=PUSH)
    assert ledger.admit(late) is None


@pytest.mark.parametrize(
    ("first", "second", "told"),
    [
        (Action.CREATE, Action.CREATE, Action.UPDATE),
        (Action.UPDATE, Action.UPDATE, Action.UPDATE),
        (None, Action.UPDATE, Action.CREATE),
    ],
)
def test_action_is_rewritten_to_what_subscribers_know(first, second, told):
    """Subscribers get create for a key they never saw, update otherwise."""
    ledger = Ledger()
    if first:
        ledger.admit(ch(first))
    out = ledger.admit(ch(second, state="OTHER", ts="2026-01-01T00:00:09Z"))
    assert out.action is told


def test_delete_carries_last_known_state():
    """A delete without state is delivered with the last known entity."""
    ledger = Ledger()
    ledger.admit(ch(Action.CREATE, state="ACTIVE"))
    bare = Change(Action.DELETE, Entity("t", "k", timestamp="2026-01-01T00:00:09Z"))
    out = ledger.admit(bare)
    assert out.action is Action.DELETE
    assert out.entity.state == "ACTIVE"
    assert len(ledger) == 0


def test_delete_of_unknown_or_deleted_is_dropped():
    """Deleting what was never told, or told deleted, tells nothing."""
    ledger = Ledger()
    assert ledger.admit(ch(Action.DELETE)) is None
    ledger.admit(ch(Action.CREATE))
    assert ledger.admit(ch(Action.DELETE, ts="2026-01-01T00:00:05Z")) is not None
    assert ledger.admit(ch(Action.DELETE, ts="2026-01-01T00:00:06Z")) is None


def test_stale_poll_cannot_resurrect_a_deleted_entity():
    """After a push delete, a poll still listing the entity is dropped."""
    ledger = Ledger()
    ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:01Z"))
    ledger.admit(ch(Action.DELETE, ts="2026-01-01T00:00:02Z", source=PUSH))
    assert ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:03Z", source=POLL)) is None
    again = ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:04Z", source=PUSH))
    assert again is not None
    assert again.action is Action.CREATE


def test_tombstones_expire():
    """Tombstones are pruned after their TTL, freeing memory."""
    ledger = Ledger(tombstone_ttl=0.0)
    ledger.admit(ch(Action.CREATE))
    ledger.admit(ch(Action.DELETE, ts="2026-01-01T00:00:05Z"))
    assert ledger.prune() == 1
    assert ledger.get("t", "k") is None


def test_sequence_numbers_are_stamped():
    """Delivered changes carry the sequence number they were admitted with."""
    ledger = Ledger()
    assert ledger.admit(ch(Action.CREATE), seq=7).seq == 7
