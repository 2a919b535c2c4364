"""Metrics and health on the loopback port, moving as changes flow."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from synchronizer import Synchronizer, opts
from synchronizer_fakecloud.testbed import free_port
from tests.helpers.daemon import REPO


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback test URL
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def value(text: str, prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{prefix} not in metrics")


def test_metrics_move_and_health_follows_the_plugin(tmp_path: Path):
    """Counters move with changes; health turns 503 while the source fails and 200 after."""
    shutil.copytree(REPO / "etc" / "synchronizer" / "static", tmp_path / "static")
    things = tmp_path / "things.json"
    things.write_text(json.dumps({"a": "up"}))
    port = free_port()
    conf_path = tmp_path / "s.conf"
    conf_path.write_text(
        "[DEFAULT]\nplugins = tests.helpers.plugins:FileCollector\nsinks =\n"
        f"metrics_port = {port}\n[filecollector]\nperiod = 0.2\nmax_backoff = 0.2\n"
        f"path = {things}\n"
    )
    sync = Synchronizer(opts.parse(["--config-file", str(conf_path)], setup_logging=False))
    sync.register(None, lambda item: None, name="probe")
    sync.start()
    base = f"http://127.0.0.1:{port}"
    try:
        assert sync.wait_ready(20)
        code, text = fetch(base + "/metrics")
        assert code == 200
        created = 'synchronizer_poll_changes_total{action="create",plugin="filecollector"}'
        assert value(text, created) == 1.0
        things.write_text(json.dumps({"a": "down", "b": "up"}))
        _wait(lambda: value(fetch(base + "/metrics")[1], created) == 2.0)
        text = fetch(base + "/metrics")[1]
        assert 'synchronizer_subscriber_delivered_total{subscriber="probe"}' in text
        assert fetch(base + "/healthz")[0] == 200
        things.write_text(json.dumps("FAIL"))
        _wait(lambda: fetch(base + "/healthz")[0] == 503)
        assert "synchronizer_plugin_failures_total" in fetch(base + "/metrics")[1]
        things.write_text(json.dumps({"a": "up"}))
        _wait(lambda: fetch(base + "/healthz")[0] == 200)
    finally:
        sync.stop()


def test_metrics_bind_loopback_only():
    """The default metrics host is the loopback address."""
    conf = opts.parse([], setup_logging=False)
    assert conf.metrics_host == "127.0.0.1"
    assert conf.metrics_port == 0


def _wait(predicate, timeout: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")
