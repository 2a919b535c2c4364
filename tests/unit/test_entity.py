"""The entity and change model."""

import dataclasses

import orjson
import pytest

from synchronizer import timeutil
from synchronizer.model import Action, Change, Entity, Ref, Relation, Source


def test_change_json_has_entity_fields_at_top_level():
    """A change's JSON form is one object with the entity's fields and the action."""
    e = Entity(
        "nova.instance",
        "u1",
        state="ACTIVE",
        project="p",
        parent=Ref("nova.host", "h"),
        relations=(Relation("attached", "cinder.volume", "v"),),
        properties={"name": "x"},
        timestamp="2026-01-01T00:00:00Z",
        source=Source("poll", "nova.instance"),
    )
    data = orjson.loads(Change(Action.UPDATE, e).to_json())
    assert {"type", "key", "action", "timestamp", "state", "project", "parent"} <= set(data)
    assert {"relations", "source", "properties"} <= set(data)
    assert data["action"] == "update"
    assert data["parent"] == {"type": "nova.host", "key": "h"}
    assert Change.from_dict(data).entity == e


def test_entities_are_immutable():
    """Consumers cannot change an entity's fields."""
    e = Entity("t", "k")
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.state = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2016-08-19 10:20:59.279903", "2016-08-19T10:20:59.279903Z"),
        ("2016-08-19T10:20:59Z", "2016-08-19T10:20:59.000000Z"),
        ("2016-08-19T12:20:59+02:00", "2016-08-19T10:20:59.000000Z"),
        (0, None),
        (1471602059.5, "2016-08-19T10:20:59.500000Z"),
    ],
)
def test_timestamps_are_normalised_to_utc(raw, expected):
    """Every timestamp form becomes UTC ISO 8601 with microseconds and Z."""
    got = timeutil.normalize(raw)
    if expected is None:
        assert got.endswith("Z")
        assert len(got) == 27
    else:
        assert got == expected


@pytest.mark.parametrize("bad", [{"key": "k"}, {"type": "t"}, {"type": "", "key": "k"}])
def test_invalid_entity_dicts_are_refused(bad):
    """An entity without a type or key is a clear ValueError."""
    with pytest.raises(ValueError, match="entity"):
        Entity.from_dict(bad)
