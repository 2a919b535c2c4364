"""Hostile input: each bad thing gets a clear error naming it, and nothing else stops.

The real daemon as a subprocess; APIs from the fake cloud over real HTTP.
(Unknown entry points and a plugin raising in ``__init__`` are covered by
``test_daemon.py::test_broken_plugins_are_reported_and_others_run``.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from synchronizer_fakecloud.server import FakeCloud
from tests.helpers.cloudconf import SYSTEM_GROUP, service_credentials, system_credentials
from tests.helpers.daemon import REPO, Daemon, script

EMBEDDED = REPO / "etc" / "synchronizer"
STATIC_COUNT = 6


@pytest.fixture
def embedded(tmp_path: Path) -> Path:
    shutil.copytree(EMBEDDED / "static", tmp_path / "static")
    return tmp_path


def _static_conf(folder: Path, plugins: str, extra: str = "") -> Path:
    conf = folder / "synchronizer.conf"
    conf.write_text(
        f"[DEFAULT]\nplugins = {plugins}\nsinks = jsonl\njsonl_path = -\n{extra}"
        "[static]\ndirectory = static\nperiod = 0.3\n"
    )
    return conf


def test_malformed_plugin_option_fails_that_plugin_only(embedded: Path):
    """``period = soon`` disables its plugin with an error naming group, option and value."""
    conf = _static_conf(embedded, "static, tests.helpers.plugins:FileCollector")
    conf.write_text(conf.read_text() + "[filecollector]\nperiod = soon\npath = x.json\n")
    with Daemon(conf) as d:
        d.wait_records(STATIC_COUNT)
        d.wait_log("[filecollector]")
        line = next(line for line in d.logs if "[filecollector]" in line)
    assert "period" in line
    assert "'soon'" in line
    assert {r["source"]["plugin"] for r in d.records} == {"static"}


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        ("chunk_size", "lots", "'lots'"),
        ("metrics_port", "notaport", "'notaport'"),
        ("worker_restart_delay", "-1", "greater than or equal to 0"),
    ],
)
def test_malformed_core_option_exits_with_a_clear_error(embedded: Path, option, value, reason):
    """A malformed core option stops the daemon at once, exit 2, naming option and value."""
    conf = _static_conf(embedded, "static", f"{option} = {value}\n")
    out = subprocess.run(
        [script("synchronizer"), "--config-file", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "configuration error" in out.stderr
    assert option in out.stderr
    assert reason in out.stderr
    assert "{" not in out.stdout  # nothing was started


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("sinks = jsonl, carrier-pigeon\n", "carrier-pigeon"),
        ("metrics_port = {busy}\n", "{busy}"),
    ],
    ids=["unknown-sink", "metrics-port-taken"],
)
def test_a_daemon_that_cannot_start_exits_non_zero(embedded: Path, extra: str, named: str):
    """An unknown sink or a taken metrics port: configuration errors, exit 2 with the reason."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        conf = _static_conf(embedded, "static", extra.format(busy=busy))
        out = subprocess.run(
            [script("synchronizer"), "--config-file", str(conf)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert out.returncode == 2, out.stderr[-2000:]
    logs = (out.stdout + out.stderr).splitlines()
    line = next((line for line in logs if "Cannot start" in line), "no 'Cannot start' line")
    assert named.format(busy=busy) in line


def test_unusable_plugin_classes_are_named_and_others_run(embedded: Path):
    """Not a plugin, a missing module, a missing class: each named; static still runs."""
    bad = {
        "tests.helpers.plugins:NotAPlugin": "is neither a CollectorPlugin nor a NotificationPlugin",
        "tests.no_such_module:Thing": "No module named 'tests.no_such_module'",
        "tests.helpers.plugins:NoSuchClass": "has no attribute 'NoSuchClass'",
    }
    conf = _static_conf(embedded, ", ".join([*bad, "static"]))
    with Daemon(conf) as d:
        d.wait_records(STATIC_COUNT)
        for name, reason in bad.items():
            d.wait_log(reason)
            assert any(name in line and reason in line for line in d.logs), name


# -- broken API bodies ---------------------------------------------------------

CORRUPTED = {
    "nova": ("nova.instance", "truncate"),
    "cinder": ("cinder.volume", "malformed"),
    "neutron": ("neutron.network", "empty"),
    "heat": ("heat.stack", "disconnect"),
    "ironic": ("ironic.node", "enormous"),
}


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud(seed=3) as fake:
        fake.populate(servers=4, hosts=1, volumes=2, networks=2, nodes=2, stacks=2)
        yield fake


def _cloud_conf(cloud: FakeCloud, folder: Path) -> Path:
    plugins = [plugin for plugin, _ in CORRUPTED.values()]
    lines = [
        "[DEFAULT]",
        f"plugins = {', '.join(plugins)}",
        "sinks = jsonl",
        *service_credentials(cloud),
        *system_credentials(cloud),
    ]
    for plugin in plugins:
        lines += [f"[{plugin}]", "period = 0.5", "max_backoff = 1"]
        if plugin == "ironic.node":
            lines.append(f"credentials = {SYSTEM_GROUP}")
    conf = folder / "cloud.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _incomplete(d: Daemon, plugin: str) -> list[str]:
    pattern = re.compile(rf"{re.escape(plugin)}: \w+ cycle listed .* INCOMPLETE \((.+)\)$")
    return [m.group(1) for line in list(d.logs) if (m := pattern.search(line))]


def test_broken_api_bodies_fail_one_cycle_each_and_delete_nothing(cloud: FakeCloud, tmp_path):
    """Truncated, HTML, empty, cut and enormous bodies: an incomplete cycle with a reason,
    no delete, and the next cycles (and every other plugin) carry on."""
    total = sum(len(cloud.keys(k)) for k in ("servers", "volumes", "networks", "stacks", "nodes"))
    with Daemon(_cloud_conf(cloud, tmp_path)) as d:
        d.wait_records(total, timeout=60)
        for service, (_, mode) in CORRUPTED.items():
            cloud.corrupt(service, mode)
        for plugin, mode in CORRUPTED.values():
            assert d.wait_until(lambda p=plugin: _incomplete(d, p), 60), f"{plugin} ({mode})"
        cloud.update("servers", cloud.keys("servers")[0], status="SHUTOFF")
        cloud.update("volumes", cloud.keys("volumes")[0], status="error")
        cloud.update("networks", cloud.keys("networks")[0], mtu=9000)
        cloud.update("stacks", cloud.keys("stacks")[0], status="UPDATE_FAILED")
        cloud.update("nodes", cloud.keys("nodes")[0], maintenance=True)
        records = d.wait_records(total + 5, timeout=60)
        reasons = {plugin: _incomplete(d, plugin)[0] for plugin, _ in CORRUPTED.values()}
    assert [r for r in records if r["action"] == "delete"] == []
    assert sorted(r["type"] for r in records[total:]) == sorted(
        ["nova.instance", "cinder.volume", "neutron.network", "heat.stack", "ironic.node"]
    )
    for plugin, reason in reasons.items():
        assert len(reason) > 10, (plugin, reason)
        assert len(reason) <= 600, (plugin, reason)  # not the enormous body echoed back
