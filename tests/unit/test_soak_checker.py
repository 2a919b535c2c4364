"""The soak's judges find what they are meant to find (and nothing else)."""

from __future__ import annotations

import pytest

from synchronizer.model import Action, Change, Entity, Synced
from tests.soak.checker import StreamChecker, compare_world
from tests.soak.truth import Truth, revision

I = "nova.instance"  # noqa: E741


def vm(key: str, state: str = "ACTIVE", rev: int | None = None) -> Entity:
    meta = {"soak_rev": str(rev)} if rev is not None else {}
    return Entity(I, key, state=state, properties={"metadata": meta})


def change(action: Action, entity: Entity, seq: int = 0) -> Change:
    return Change(action, entity, seq=seq)


@pytest.fixture
def truth() -> Truth:
    t = Truth()
    t.observe({I: {"a", "b"}}, before=0.0, after=1.0)  # both born at 1
    t.observe({I: {"a"}}, before=10.0, after=11.0)  # b dies at 10
    return t


def test_truth_lifetimes_are_conservative(truth: Truth):
    """Alive from after the create until before the delete; unknown keys never alive."""
    assert not truth.alive_at((I, "a"), 0.5)
    assert truth.alive_at((I, "a"), 1.0)
    assert truth.alive_at((I, "b"), 9.9)
    assert not truth.alive_at((I, "b"), 10.0)
    assert not truth.alive_at((I, "c"), 5.0)
    assert truth.current() == {I: {"a"}}
    assert truth.deaths() == 1


def test_a_repeated_fingerprint_is_a_duplicate(truth: Truth):
    checker = StreamChecker(truth, {})
    checker.feed(change(Action.SNAPSHOT, vm("a")), received_at=2.0)
    checker.feed(Synced(None, 1), received_at=2.0)
    checker.feed(change(Action.UPDATE, vm("a")), received_at=3.0)
    checker.feed(change(Action.UPDATE, vm("a", "SHUTOFF")), received_at=4.0)
    checker.feed(change(Action.UPDATE, vm("a")), received_at=5.0)
    assert checker.findings.duplicates == 1
    assert checker.synced.is_set()
    assert checker.findings.changes == {"snapshot": 1, "update": 3}


def test_a_create_after_a_delete_is_not_a_duplicate(truth: Truth):
    checker = StreamChecker(truth, {})
    checker.feed(change(Action.CREATE, vm("b")), received_at=2.0)
    checker.feed(change(Action.DELETE, vm("b")), received_at=12.0)
    checker.feed(change(Action.CREATE, vm("b")), received_at=13.0)
    assert checker.findings.duplicates == 0


def test_a_lower_revision_is_an_older_state(truth: Truth):
    checker = StreamChecker(truth, {})
    checker.feed(change(Action.UPDATE, vm("a", rev=12)), received_at=2.0)
    checker.feed(change(Action.UPDATE, vm("a", "SHUTOFF", rev=14)), received_at=3.0)
    checker.feed(change(Action.UPDATE, vm("a", "PAUSED", rev=13)), received_at=4.0)
    checker.feed(change(Action.UPDATE, vm("a", "ERROR", rev=15)), received_at=5.0)
    assert checker.findings.older == 1
    assert "rev 13 after rev 14" in checker.findings.examples["older"][0]


def test_a_delete_of_a_living_entity_is_false(truth: Truth):
    checker = StreamChecker(truth, {})
    checker.feed(change(Action.DELETE, vm("a")), received_at=5.0)  # a never died
    checker.feed(change(Action.DELETE, vm("b")), received_at=5.0)  # b alive until 10
    checker.feed(change(Action.DELETE, vm("b")), received_at=10.5)  # after b died: fine
    assert checker.findings.false_deletes == 2
    assert checker.world() == {}


def test_world_comparison_finds_missing_phantom_and_wrong():
    truth = {I: {"a", "b", "c"}}
    reference = {(I, k): vm(k) for k in ("a", "b", "c")}
    world = {(I, "a"): vm("a"), (I, "b"): vm("b", "SHUTOFF"), (I, "z"): vm("z")}
    report = compare_world(world, reference, truth, {})
    assert report.missing == [(I, "c")]
    assert report.phantom == [(I, "z")]
    assert report.wrong == [(I, "b")]
    assert report.reference_vs_truth == []
    assert not report.ok
    assert compare_world(reference, reference, truth, {}).ok


def test_volatile_properties_do_not_make_a_state_wrong():
    truth = {"nagios.service": {"h/c"}}
    a = Entity("nagios.service", "h/c", state="OK", properties={"last_check": 1})
    b = Entity("nagios.service", "h/c", state="OK", properties={"last_check": 2})
    volatile = {"nagios.service": frozenset({"last_check"})}
    key = ("nagios.service", "h/c")
    assert compare_world({key: a}, {key: b}, truth, volatile).ok
    assert not compare_world({key: a}, {key: b}, truth, {}).ok


@pytest.mark.parametrize(
    ("etype", "properties", "expected"),
    [
        (I, {"metadata": {"soak_rev": "17"}}, 17),
        (I, {"metadata": {}}, None),
        ("cinder.volume", {"name": "vol-3~r21"}, 21),
        ("neutron.port", {"description": "rev 9"}, 9),
        ("nova.host", {"disabled_reason": "rev 30"}, 30),
        ("nagios.service", {"current_attempt": 1}, None),
        ("nagios.service", {"current_attempt": 44}, 44),
        ("nova.zone", {"hosts": []}, None),
    ],
)
def test_revisions_are_read_back(etype, properties, expected):
    assert revision(etype, properties) == expected
