"""Delete inference: complete listings, reported deletes, and a resync's sweep."""

import copy

import pytest

from synchronizer import deletes, fingerprint
from synchronizer.model import Action, Change, Entity, Source

NOW = "2026-01-01T00:10:00.000000Z"
POLL = Source("poll", "c")


@pytest.mark.parametrize(
    ("old", "seen", "created", "gone"),
    [
        ({"t": {"a": 1, "b": 2}}, {"t": {"a": 1, "b": 3}}, set(), []),
        ({"t": {"a": 1, "b": 2}}, {"t": {"a": 1}}, set(), [("t", "b")]),
        ({"t": {"a": 1}}, {"t": {"c": 1}}, {("t", "c")}, [("t", "a")]),
        ({"t": {"a": 1}, "u": {"a": 1}}, {"t": {"a": 1}}, set(), [("u", "a")]),
        ({}, {"t": {"a": 1}}, {("t", "a")}, []),
    ],
    ids=["all-listed", "one-unlisted", "swapped", "type-vanished", "all-new"],
)
def test_missing_finds_exactly_the_unlisted_keys(old, seen, created, gone):
    """The keys a listing lacks are found, and no other, even when its count matches."""
    assert sorted(deletes.missing(old, seen, created)) == gone


def test_unlisted_deletes_are_observed_at_now_and_repeatable():
    """Deletes of a complete listing carry the given time; equal input gives equal deletes."""
    old, seen = {"t": {"a": 1, "b": 2}}, {"t": {"a": 1}}
    frozen = copy.deepcopy((old, seen))
    first = deletes.unlisted(old, seen, set(), NOW)
    assert first == [Change(Action.DELETE, Entity("t", "b", timestamp=NOW), inferred=True)]
    assert deletes.unlisted(old, seen, set(), NOW) == first
    assert (old, seen) == frozen


def test_a_lazy_time_is_asked_only_when_something_is_gone():
    """A callable ``now`` is not called for a listing that deletes nothing."""
    asked = []
    assert deletes.unlisted({"t": {"a": 1}}, {"t": {"a": 1}}, set(), asked.append) == []
    assert asked == []
    (gone,) = deletes.unlisted({"t": {"a": 1}}, {}, set(), lambda: NOW)
    assert gone.entity.timestamp == NOW


def test_reported_deletes_are_deletes_whatever_the_baseline_holds():
    """A delta's reported deletes all go (a key may be known from a push alone), out of known."""
    known = {"t": {"a": 1, "b": 2}}
    told = deletes.reported(
        known, [Entity("t", "a", timestamp=NOW), Entity("t", "zz"), Entity("u", "a")]
    )
    assert [(c.action, c.type, c.key) for c in told] == [
        (Action.DELETE, "t", "a"),
        (Action.DELETE, "t", "zz"),
        (Action.DELETE, "u", "a"),
    ]
    assert told[0].entity.timestamp == NOW
    assert not told[0].inferred  # the service said so: a final delete
    assert known == {"t": {"b": 2}}


def told(key, ts, type_="t", source=POLL):
    e = Entity(type_, key, state="ACTIVE", timestamp=ts, source=source)
    return Change(Action.CREATE, e, fingerprint.of(e))


STARTED = "2026-01-01T00:01:00.000000Z"
BEFORE = "2026-01-01T00:00:00.000000Z"
AFTER = "2026-01-01T00:02:00.000000Z"


@pytest.mark.parametrize(
    ("change", "swept"),
    [
        (told("gone", BEFORE), True),
        (told("listed", BEFORE), False),
        (told("pushed-later", AFTER, source=Source("push", "n")), False),
        (told("other-type-by-plugin", BEFORE, type_="x"), True),
        (told("other-type-other-plugin", BEFORE, type_="x", source=Source("poll", "o")), False),
        (told("own-type-by-push", BEFORE, source=Source("push", "n")), True),
    ],
    ids=lambda v: v.key if isinstance(v, Change) else str(v),
)
def test_a_resync_sweeps_what_it_owns_did_not_list_and_was_seen_before_it(change, swept):
    """Only entities of the plugin, unlisted, last observed before the resync began, are swept."""
    resync = deletes.Resync("c", frozenset({"t"}), STARTED)
    resync.note(Entity("t", "listed", timestamp=STARTED))
    out = resync.sweep([change], NOW)
    assert [c.key for c in out] == ([change.key] if swept else [])


def test_a_sweep_is_final_state_unknown_from_the_plugin_at_now():
    """Swept deletes are final_state_unknown, from the plugin's poll, at the given time."""
    resync = deletes.Resync("c", frozenset({"t"}), STARTED)
    view = [told("gone", BEFORE, source=Source("push", "n"))]
    (out,) = resync.sweep(view, NOW)
    assert (out.action, out.final_state_unknown) == (Action.DELETE, True)
    assert (out.entity.timestamp, out.entity.source) == (NOW, Source("poll", "c"))
    assert out.entity.state == "ACTIVE"
    assert resync.sweep(view, NOW) == [out]


@pytest.mark.parametrize(
    ("gone", "tracked", "threshold", "held"),
    [
        (1, 2, 0.1, 0),  # one delete is never held, however small the plugin
        (2, 100, 0.1, 0),  # 2% of 100
        (10, 100, 0.1, 0),  # exactly the share
        (11, 100, 0.1, 11),  # over it
        (1495, 2500, 0.1, 1495),  # a first page without its next link
        (2500, 2500, 1.0, 0),  # 1 turns the check off
        (2, 10, 0.0, 2),  # 0 holds every mass delete
    ],
)
def test_a_mass_delete_over_the_share_is_held(gone, tracked, threshold, held):
    """A listing deleting more than the share (and more than one) holds them all."""
    hold = deletes.MassDeleteHold(threshold)
    keys = [("t", str(i)) for i in range(gone)]
    assert len(hold.screen(keys, tracked)) == held


def test_the_next_listing_confirms_or_withdraws_held_deletes():
    """Held keys missing again are confirmed, listed ones withdrawn; fresh ones judged anew."""
    hold = deletes.MassDeleteHold(0.1)
    first = [("t", str(i)) for i in range(50)]
    assert hold.screen(first, 100) == set(first)
    # Next listing: 20 of them are still missing, 30 are back, and 1 more is gone.
    again = [*first[:20], ("t", "x")]
    assert hold.screen(again, 100) == set()
    assert (hold.confirmed, hold.withdrawn) == (20, 30)
    assert hold.held == frozenset()


def test_a_mass_delete_during_confirmation_is_held_on_its_own():
    """Confirming held deletes does not let a new mass delete through with them."""
    hold = deletes.MassDeleteHold(0.1)
    first = [("t", str(i)) for i in range(20)]
    hold.screen(first, 100)
    fresh = [("t", f"n{i}") for i in range(15)]
    assert hold.screen([*first, *fresh], 100) == set(fresh)
    assert hold.confirmed == 20
