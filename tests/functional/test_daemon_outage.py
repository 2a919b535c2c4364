"""The real daemon polling the fake cloud through a Keystone outage and token churn.

The daemon runs as a subprocess with the ``nova.instance`` collector and the
``jsonl`` sink on its stdout; the fake cloud is a real HTTP server in this
process.  A Keystone outage only bites once the daemon's token is no longer
valid, so each outage also revokes the issued tokens: Nova answers 401 and
keystoneauth's re-authentication then meets the dead Keystone.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from synchronizer_fakecloud.keystone import Credentials
from synchronizer_fakecloud.server import FakeCloud
from tests.helpers.cloudconf import service_credentials
from tests.helpers.daemon import Daemon, settle

PASSWORD = "outage-test-pw-5d1c"  # the fake cloud's password: checked absent from logs
PERIOD = 0.5
MAX_BACKOFF = 2.0
# Back-off delays while failing: 0.5, 1, 2, then 2 for ever: three steps.
BACKOFF_STEPS = 3
BACKOFF = re.compile(r"nova\.instance: cycle failed \((\d+) in a row\); next attempt in ([\d.]+) s")


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud(credentials=Credentials(password=PASSWORD)) as fake:
        yield fake


@pytest.fixture
def config(cloud: FakeCloud, tmp_path: Path) -> Path:
    """A fresh cloud of a few servers, and the daemon's config to poll it."""
    cloud.reset()
    cloud.populate(servers=8, hosts=2)
    path = tmp_path / "synchronizer.conf"
    path.write_text(
        "\n".join(
            [
                "[DEFAULT]",
                "plugins = nova.instance",
                "sinks = jsonl",
                "jsonl_path = -",
                *service_credentials(cloud, PASSWORD, timeout=5),
                "[nova.instance]",
                f"period = {PERIOD}",
                f"max_backoff = {MAX_BACKOFF}",
            ]
        )
        + "\n"
    )
    return path


def backoff_lines(d: Daemon) -> list[tuple[int, float]]:
    with d._cond:
        return [(int(m[1]), float(m[2])) for line in d.logs if (m := BACKOFF.search(line))]


def changes(records: list[dict]) -> list[tuple[str, str, str]]:
    return [(r["action"], r["key"], r["state"]) for r in records]


def at_level(d: Daemon, level: str) -> list[str]:
    with d._cond:
        return [line for line in d.logs if f" {level} " in line]


def wait_running(d: Daemon, cloud: FakeCloud) -> None:
    """The first full listing is out: one create per server."""
    d.wait_records(len(cloud.keys("servers")), timeout=60)
    d.wait_log("full cycle listed", timeout=30)


@pytest.mark.parametrize("mode", ["refuse", "503"])
def test_keystone_outage_backs_off_then_recovers_without_loss(cloud, config, mode):
    """Down: one log per back-off step, no delete; back: each change made meanwhile, once."""
    with Daemon(config) as d:
        wait_running(d, cloud)
        worker = d.worker_pids()
        before = len(d.records)
        cloud.keystone_down(True, mode)
        cloud.revoke_tokens()
        # Five failed cycles reach the capped step and retry there twice more.
        d.wait_log("INCOMPLETE", count=BACKOFF_STEPS + 2, timeout=60)
        servers = cloud.keys("servers")
        updated, deleted = servers[0], servers[1]
        cloud.update("servers", updated, status="SHUTOFF")
        cloud.delete("servers", deleted)
        created = cloud.create("servers", name="born-in-outage", host=cloud.keys("hypervisors")[0])
        d.wait_log("INCOMPLETE", count=BACKOFF_STEPS + 3, timeout=60)
        during = d.records[before:]
        steps = backoff_lines(d)
        failures = d.count_logs("INCOMPLETE")
        cloud.keystone_down(False)
        d.wait_log("service back after", timeout=30)
        records = d.wait_records(before + 3, timeout=30)
        settle(4 * PERIOD)
        records = list(d.records)
        assert d.proc.poll() is None
        assert d.worker_pids() == worker
    assert during == []
    assert failures >= BACKOFF_STEPS + 3
    assert steps == [(1, PERIOD), (2, 2 * PERIOD), (3, MAX_BACKOFF)]
    assert sorted(changes(records[before:])) == sorted(
        [
            ("update", updated, "SHUTOFF"),
            ("delete", deleted, "DELETED"),
            ("create", created, "ACTIVE"),
        ]
    )
    assert d.count_logs("service back after") == 1
    assert not any(PASSWORD in line for line in d.logs)


def test_expired_and_revoked_tokens_are_renewed_transparently(cloud, config):
    """One-second tokens and a revocation cost new tokens, never a failed cycle or an ERROR."""
    cloud.token_expiry(1.0)
    with Daemon(config) as d:
        wait_running(d, cloud)
        before = len(d.records)
        issued = cloud.tokens_issued
        cycles = d.count_logs("cycle listed")
        d.wait_log("cycle listed", count=cycles + 4, timeout=30)
        key = cloud.keys("servers")[2]
        cloud.revoke_tokens()
        cloud.update("servers", key, status="PAUSED")
        d.wait_records(before + 1, timeout=30)
        cloud.revoke_tokens()
        cloud.update("servers", key, status="ACTIVE")
        d.wait_records(before + 2, timeout=30)
        settle(4 * PERIOD)
        records = list(d.records)
    assert changes(records[before:]) == [("update", key, "PAUSED"), ("update", key, "ACTIVE")]
    assert cloud.tokens_issued >= issued + 4
    assert d.count_logs("INCOMPLETE") == 0
    assert backoff_lines(d) == []
    assert at_level(d, "ERROR") == []
    assert not any(PASSWORD in line for line in d.logs)


def test_a_refused_password_is_retried_not_ready_until_the_right_one_is_loaded(
    cloud, config, tmp_path
):
    """Keystone's password rotated before the config: 401s are retried with back-off (no
    "disabled", no READY, /healthz 503); the right password and SIGHUP: READY, every server."""
    import json
    import socket
    import urllib.error
    import urllib.request

    from tests.helpers import fleetparts

    right = config.read_text()
    port = fleetparts.free_port()
    wrong = right.replace(f"password = {PASSWORD}", "password = before-the-rotation")
    config.write_text(wrong.replace("[DEFAULT]", f"[DEFAULT]\nmetrics_port = {port}", 1))
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(0.2)

    def told() -> list[str]:
        got = []
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except TimeoutError:
                return got

    def health() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            json.loads(exc.read())  # the report still comes with the 503
            return exc.code

    try:
        with Daemon(config, {"NOTIFY_SOCKET": str(notify)}) as d:
            d.wait_log("credentials refused", count=3, timeout=60)
            assert [n for n, _ in backoff_lines(d)][:2] == [1, 2], "no back-off"
            assert not d.count_logs("disabled")
            assert not d.count_logs("permanent")
            assert not [m for m in told() if "READY=1" in m]
            assert health() == 503
            assert d.records == []
            config.write_text(right.replace("[DEFAULT]", f"[DEFAULT]\nmetrics_port = {port}", 1))
            d.signal(signal.SIGHUP)
            d.wait_records(len(cloud.keys("servers")), timeout=60)
            deadline = time.monotonic() + 30
            messages: list[str] = []
            while time.monotonic() < deadline and not any("READY=1" in m for m in messages):
                messages += told()
            assert any("READY=1" in m for m in messages)
            assert health() == 200
            assert not any("before-the-rotation" in line for line in d.logs)
    finally:
        sock.close()
