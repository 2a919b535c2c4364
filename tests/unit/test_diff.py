"""The pure diff: creates, updates, deletes; nothing from incomplete listings."""

import copy

import pytest

from synchronizer import diff, fingerprint
from synchronizer.entity import Action, Entity


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
    result = diff.diff_snapshot(base(*old), listing, complete=complete)
    assert {c.key: c.action for c in result.changes} == expected


@pytest.mark.parametrize(("old", "listing", "complete", "expected"), CASES)
def test_incomplete_keeps_baseline_and_input_untouched(old, listing, complete, expected):
    """An incomplete listing leaves the baseline as it was; no input is mutated."""
    baseline = base(*old)
    frozen = copy.deepcopy(baseline)
    result = diff.diff_snapshot(baseline, listing, complete=complete)
    assert baseline == frozen
    if complete:
        assert result.baseline == base(*listing)
    else:
        assert result.baseline == frozen
        assert not [c for c in result.changes if c.action is Action.DELETE]


def test_changes_carry_fingerprints():
    """Creates and updates carry the fingerprint the baseline stores."""
    result = diff.diff_snapshot({}, [E("a")], complete=True)
    assert result.changes[0].fingerprint == result.baseline[("t", "a")]


def test_delta_applies_updates_and_reported_deletes_only():
    """A delta listing updates and deletes what it reports; absent keys stay."""
    baseline = base(E("a"), E("b"), E("c"))
    result = diff.diff_delta(baseline, [E("a", "SHUTOFF"), E("d")], [E("b"), E("zz")])
    assert {c.key: c.action for c in result.changes} == {
        "a": Action.UPDATE,
        "d": Action.CREATE,
        "b": Action.DELETE,
    }
    assert set(result.baseline) == {("t", "a"), ("t", "c"), ("t", "d")}
    assert set(baseline) == {("t", "a"), ("t", "b"), ("t", "c")}


def test_volatile_properties_do_not_cause_updates():
    """Moving timers declared volatile produce no update."""
    old = Entity("t", "a", properties={"last_check": 1})
    new = Entity("t", "a", properties={"last_check": 2})
    baseline = {("t", "a"): fingerprint.of(old, {"last_check"})}
    result = diff.diff_snapshot(baseline, [new], complete=True, volatile={"last_check"})
    assert result.changes == []
