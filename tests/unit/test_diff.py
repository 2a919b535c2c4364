"""The pure diff: creates, updates, deletes; nothing from incomplete listings."""

import copy

import pytest

from synchronizer import deletes, diff, fingerprint
from synchronizer.model import Action, Entity

NOW = "2026-01-01T00:10:00.000000Z"


def E(key, state="ACTIVE"):
    return Entity("t", key, state=state)


def base(*entities):
    return {(e.type, e.key): fingerprint.of(e) for e in entities}


CASES = [
    # (baseline, listing, complete, expected actions by key)
    ([], [E("a")], True, {"a": Action.CREATE}),
    ([E("a")], [E("a")], True, {}),
    ([E("a")], [E("a", "SHUTOFF")], True, {"a": Action.UPDATE}),
    ([E("a"), E("b")], [E("a")], True, {"b": Action.DELETE}),
    ([E("a"), E("b")], [], True, {"a": Action.DELETE, "b": Action.DELETE}),
    ([E("a"), E("b")], [E("a")], False, {}),
    ([E("a"), E("b")], [E("a", "ERROR")], False, {"a": Action.UPDATE}),
    ([E("a")], [E("c")], False, {"c": Action.CREATE}),
]


@pytest.mark.parametrize(("old", "listing", "complete", "expected"), CASES)
def test_snapshot_table(old, listing, complete, expected):
    """Each listing yields exactly the expected creates, updates and deletes."""
    result = diff.diff_snapshot(base(*old), listing, complete=complete, now=NOW)
    assert {c.key: c.action for c in result.changes} == expected


@pytest.mark.parametrize(("old", "listing", "complete", "expected"), CASES)
def test_incomplete_keeps_baseline_and_input_untouched(old, listing, complete, expected):
    """An incomplete listing leaves the baseline as it was; no input is mutated."""
    baseline = base(*old)
    frozen = copy.deepcopy(baseline)
    result = diff.diff_snapshot(baseline, listing, complete=complete, now=NOW)
    assert baseline == frozen
    if complete:
        assert result.baseline == base(*listing)
    else:
        assert result.baseline == frozen
        assert not [c for c in result.changes if c.action is Action.DELETE]


def test_changes_carry_fingerprints():
    """Creates and updates carry the fingerprint the baseline stores."""
    result = diff.diff_snapshot({}, [E("a")], complete=True, now=NOW)
    assert result.changes[0].fingerprint == result.baseline[("t", "a")]


def test_delta_applies_updates_and_reported_deletes_only():
    """A delta listing updates and deletes what it reports; absent keys stay."""
    baseline = base(E("a"), E("b"), E("c"))
    result = diff.diff_delta(baseline, [E("a", "SHUTOFF"), E("d")], [E("b"), E("zz")])
    assert {c.key: c.action for c in result.changes} == {
        "a": Action.UPDATE,
        "d": Action.CREATE,
        "b": Action.DELETE,
        "zz": Action.DELETE,  # reported: the ledger decides whether anyone knew it
    }
    assert set(result.baseline) == {("t", "a"), ("t", "c"), ("t", "d")}
    assert set(baseline) == {("t", "a"), ("t", "b"), ("t", "c")}


def test_volatile_properties_do_not_cause_updates():
    """Moving timers declared volatile produce no update."""
    old = Entity("t", "a", properties={"last_check": 1})
    new = Entity("t", "a", properties={"last_check": 2})
    baseline = {("t", "a"): fingerprint.of(old, {"last_check"})}
    result = diff.diff_snapshot(baseline, [new], complete=True, now=NOW, volatile={"last_check"})
    assert result.changes == []


def test_a_listing_swapping_one_key_for_another_deletes_the_old_one():
    """Same count of keys, one new and one gone: the gone one is still deleted."""
    result = diff.diff_snapshot(base(E("a"), E("b")), [E("a"), E("c")], complete=True, now=NOW)
    assert {c.key: c.action for c in result.changes} == {
        "c": Action.CREATE,
        "b": Action.DELETE,
    }


def test_a_key_listed_twice_makes_the_listing_infer_no_delete():
    """A duplicate is a walk that shifted: the record it displaced is not gone, nothing is."""
    old = base(E("a"), E("b"))
    result = diff.diff_snapshot(old, [E("a"), E("c"), E("a")], complete=True, now=NOW)
    assert [(c.key, c.action) for c in result.changes] == [("c", Action.CREATE)]
    assert result.duplicates == 1
    assert dict(result.baseline) == old


def test_a_record_that_could_not_be_converted_keeps_its_entity():
    """A kept key (listed, not converted) is neither deleted nor dropped from the baseline.

    One the baseline did not have (a worker that started empty) is tracked
    from then on with an unknown state (0): its later absence is a delete,
    and its first good record a change.
    """
    old = base(E("a"), E("b", "ACTIVE"), E("c"))
    result = diff.diff_snapshot(
        old, [E("a")], complete=True, now=NOW, kept=lambda: [("t", "b"), ("t", "new")]
    )
    assert [(c.key, c.action) for c in result.changes] == [("c", Action.DELETE)]
    assert dict(result.baseline) == {**base(E("a"), E("b", "ACTIVE")), ("t", "new"): 0}
    fixed = diff.diff_snapshot(
        result.baseline, [E("a"), E("b", "ACTIVE"), E("new")], complete=True, now=NOW
    )
    assert [(c.key, c.action) for c in fixed.changes] == [("new", Action.UPDATE)]
    gone = diff.diff_snapshot(result.baseline, [E("a"), E("b", "ACTIVE")], complete=True, now=NOW)
    assert [(c.key, c.action) for c in gone.changes] == [("new", Action.DELETE)]


def test_held_deletes_stay_in_the_baseline():
    """Deletes the hold keeps back are not sent and keep their old fingerprints."""
    old = base(*(E(k) for k in "abcdefghij"))
    hold = deletes.MassDeleteHold(0.1)
    result = diff.diff_snapshot(old, [E(k) for k in "abcdefg"], complete=True, now=NOW, hold=hold)
    assert result.changes == []
    assert dict(result.baseline) == old
    assert hold.held == {("t", k) for k in "hij"}


def test_types_are_diffed_apart():
    """The same key under two types is two entities; one type vanishing deletes only it."""
    x, y = Entity("x", "k"), Entity("y", "k")
    result = diff.diff_snapshot(base(x, y), [x], complete=True, now=NOW)
    assert [(c.type, c.key, c.action) for c in result.changes] == [("y", "k", Action.DELETE)]
    assert dict(result.baseline) == base(x)


def test_completeness_can_be_decided_after_a_streamed_listing():
    """A callable ``complete`` is asked once the listing is consumed, and decides deletes."""
    seen = []

    def listing():
        seen.append("listed")
        yield E("a")

    def complete():
        seen.append("asked")
        return False

    result = diff.diff_snapshot(base(E("a"), E("b")), listing(), complete=complete, now=NOW)
    assert seen == ["listed", "asked"]
    assert result.changes == []
    assert dict(result.baseline) == base(E("a"), E("b"))


def test_baseline_is_a_read_only_mapping_of_type_and_key():
    """The diff's baseline reads like the dict it replaces, and comparing them works."""
    result = diff.diff_snapshot({}, [E("a"), Entity("u", "a")], complete=True, now=NOW)
    b = result.baseline
    assert len(b) == 2
    assert ("t", "a") in b
    assert ("t", "zz") not in b
    assert "a" not in b
    assert sorted(b) == [("t", "a"), ("u", "a")]
    assert b == {("t", "a"): fingerprint.of(E("a")), ("u", "a"): fingerprint.of(Entity("u", "a"))}
    assert diff.Baseline(dict(b)) == b
    assert not hasattr(b, "__setitem__")


def test_equal_input_gives_equal_results():
    """Two diffs of the same baseline, listing and time give equal changes and baselines."""
    baseline, listing = base(E("a"), E("b"), E("c")), [E("a", "SHUTOFF"), E("d")]
    first = diff.diff_snapshot(baseline, listing, complete=True, now=NOW)
    second = diff.diff_snapshot(baseline, listing, complete=True, now=NOW)
    assert first == second
    assert {c.key for c in first.changes if c.action is Action.DELETE} == {"b", "c"}


def test_deletes_are_observed_when_the_listing_ended():
    """A callable ``now`` is asked once the listing is consumed, and stamps every delete."""
    seen = []

    def listing():
        seen.append("listed")
        yield E("a")

    def now():
        seen.append("now")
        return NOW

    result = diff.diff_snapshot(base(E("a"), E("b")), listing(), complete=True, now=now)
    assert seen == ["listed", "now"]
    assert [(c.key, c.entity.timestamp) for c in result.changes] == [("b", NOW)]


def test_a_diff_without_a_time_warns_that_it_reads_the_clock():
    """Leaving ``now`` out still deletes, with a DeprecationWarning naming the fix."""
    with pytest.warns(DeprecationWarning, match="now="):
        result = diff.diff_snapshot(base(E("a")), [], complete=True)
    assert [c.action for c in result.changes] == [Action.DELETE]
