"""The notification converter: validation, routing, counting."""

import pytest
from oslo_config import cfg

from synchronizer import opts, plugin_loader
from synchronizer.model import Action
from synchronizer.workers.converter import Converter


@pytest.fixture
def converter():
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="synchronizer-test")
    plugin = plugin_loader.instantiate(conf, "tests.helpers.plugins:ThingNotifications")
    return Converter([plugin], max_bytes=2048)


GOOD = {
    "priority": "INFO",
    "event_type": "test.thing.update",
    "publisher_id": "svc.host1",
    "payload": {"key": "a", "state": "up"},
    "timestamp": "2016-08-19 10:20:59.279903",
    "message_id": "m1",
}


def test_conversion(converter):
    """A valid notification becomes a fingerprinted change observed at its time."""
    (change,) = converter.convert(GOOD)
    assert change.action is Action.UPDATE
    assert change.key == "a"
    assert change.entity.timestamp == "2016-08-19T10:20:59.279903Z"
    assert change.fingerprint != 0
    assert change.entity.source.kind == "push"
    assert converter.counts["mapped"] == 1


@pytest.mark.parametrize(
    "bad",
    [
        "not a dict",
        None,
        [1, 2],
        {"payload": {}},
        {"event_type": 5, "payload": {}},
        {"event_type": "test.thing.update"},
        {"event_type": "test.thing.update", "payload": {"key": 5}},
        {"event_type": "test.thing.update", "payload": {"key": "x" * 5000}},
        {"event_type": "test.thing.update", "payload": {"key": "a"}, "timestamp": "yesterday"},
    ],
)
def test_bad_input_is_counted_and_dropped(converter, bad, caplog):
    """Bad notifications are dropped, counted and logged once, never raised."""
    assert converter.convert(bad) == []
    assert converter.counts["dropped"] == 1
    assert len([r for r in caplog.records if "Dropped notification" in r.getMessage()]) == 1


def test_unrelated_event_is_ignored(converter):
    """An event type no plugin takes is ignored, not dropped."""
    assert converter.convert({**GOOD, "event_type": "other.thing"}) == []
    assert converter.counts["ignored"] == 1
    assert converter.counts["dropped"] == 0
