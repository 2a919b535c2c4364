"""The Nagios service shape: status normalisation, keys, parents, volatile timers."""

from __future__ import annotations

from typing import Any

import pytest
from oslo_config import cfg

from synchronizer import fingerprint
from synchronizer.model import Ref
from synchronizer_plugins.nagios import services
from synchronizer_plugins.nagios.services import ServiceCollector

RECORD: dict[str, Any] = {
    "host_name": "compute-1",
    "description": "Current Load",
    "status": 2,
    "state_type": 1,
    "plugin_output": "OK - load average: 0.00, 0.01, 0.05",
    "long_plugin_output": "",
    "perf_data": "load1=0.000;5.000;10.000;0;",
    "current_attempt": 1,
    "max_attempts": 4,
    "last_check": 1497370359000,
    "next_check": 1497370659000,
    "last_update": 1497370572000,
    "last_state_change": 1497368989000,
    "last_hard_state_change": 1497368989000,
    "has_been_checked": True,
    "problem_has_been_acknowledged": False,
    "is_flapping": False,
    "checks_enabled": True,
    "notifications_enabled": True,
    "scheduled_downtime_depth": 0,
    "latency": 0.1,
}


def make(**overrides: Any) -> ServiceCollector:
    conf = cfg.ConfigOpts()
    ServiceCollector.register_options(conf, ServiceCollector.name)
    conf(args=[], default_config_files=[])
    for name, value in overrides.items():
        conf.set_override(name, value, group=ServiceCollector.name)
    return ServiceCollector(conf)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (1, "PENDING"),
        (2, "OK"),
        (4, "WARNING"),
        (8, "UNKNOWN"),
        (16, "CRITICAL"),
        ("ok", "OK"),
        ("critical", "CRITICAL"),
        ("WARNING", "WARNING"),
        ("pending", "PENDING"),
    ],
)
def test_statuses_are_normalised(status, state):
    """Numeric statusjson codes and status names give one normalised state."""
    assert services.status_name(status) == state


@pytest.mark.parametrize("status", [0, 3, 32, True, None, "down", 2.0])
def test_unknown_statuses_are_rejected(status):
    """A status that is no Nagios service status raises ValueError."""
    with pytest.raises(ValueError, match="unknown Nagios service status"):
        services.status_name(status)


def test_record_maps_to_the_normalised_shape():
    """A service becomes nagios.service keyed host/description under its host."""
    entity = make()._convert("compute-1", "Current Load", RECORD)
    assert (entity.type, entity.key, entity.state, entity.project) == (
        "nagios.service",
        "compute-1/Current Load",
        "OK",
        None,
    )
    assert entity.parent == Ref("nova.host", "compute-1")
    assert entity.properties["state_type"] == "HARD"
    assert entity.properties["last_check"] == "2017-06-13T16:12:39.000000Z"
    assert "latency" not in entity.properties


def test_parent_type_is_configurable():
    """The host_type option sets the parent's entity type."""
    entity = make(host_type="ironic.node")._convert("compute-1", "Current Load", RECORD)
    assert entity.parent == Ref("ironic.node", "compute-1")


@pytest.mark.parametrize(
    "moved",
    [
        {"last_check": 1497370659000, "next_check": 1497370959000},
        {"last_update": 1497370999000},
        {"plugin_output": "OK - load average: 0.20, 0.11, 0.05"},
        {"perf_data": "load1=0.200;5.000;10.000;0;", "long_plugin_output": "more"},
    ],
)
def test_moving_timers_and_output_do_not_change_the_fingerprint(moved):
    """Volatile timers and check output never change the fingerprint."""
    collector = make()
    before = collector._convert("compute-1", "Current Load", RECORD)
    after = collector._convert("compute-1", "Current Load", {**RECORD, **moved})
    volatile = collector.volatile_properties
    assert fingerprint.of(before, volatile) == fingerprint.of(after, volatile)


@pytest.mark.parametrize(
    "changed",
    [{"status": 16}, {"state_type": 0}, {"current_attempt": 2}, {"is_flapping": True}],
)
def test_state_changes_change_the_fingerprint(changed):
    """A new status, soft/hard state, attempt or flapping changes the fingerprint."""
    collector = make()
    before = collector._convert("compute-1", "Current Load", RECORD)
    after = collector._convert("compute-1", "Current Load", {**RECORD, **changed})
    volatile = collector.volatile_properties
    assert fingerprint.of(before, volatile) != fingerprint.of(after, volatile)


@pytest.mark.parametrize(
    "record", ["text", {**RECORD, "status": 64}, {**RECORD, "last_check": "yesterday"}]
)
def test_malformed_records_are_skipped(record):
    """A malformed service record is reported skipped: its entity keeps its last state."""
    collector = make()
    assert collector._convert("compute-1", "Current Load", record) is None
    assert list(collector.skipped) == [("nagios.service", "compute-1/Current Load")]


def test_availability_needs_a_url():
    """The plugin is unavailable, with a reason, until its url is set."""
    assert make().available() == "[nagios.service] url is not set"
    assert make(url="http://nagios/cgi-bin/statusjson.cgi").available() is True


def test_the_password_option_is_secret():
    """The password option is marked secret so oslo.config never logs it."""
    opts = {opt.name: opt for opt in ServiceCollector.get_options()}
    assert opts["password"].secret is True


@pytest.mark.parametrize(
    ("value", "name"),
    [(1, "PENDING"), (2, "UP"), (4, "DOWN"), (8, "UNREACHABLE"), ("down", "DOWN")],
)
def test_host_status_codes_and_names(value, name):
    """statusjson's host status bits (and names) map to Nagios' host states."""
    from synchronizer_plugins.nagios import hosts

    assert hosts.status_name(value) == name


@pytest.mark.parametrize("value", [0, 16, True, "OK", None])
def test_an_unknown_host_status_is_refused(value):
    """A host status that is not one of Nagios' four is a malformed record."""
    from synchronizer_plugins.nagios import hosts

    with pytest.raises(ValueError, match="host status"):
        hosts.status_name(value)
