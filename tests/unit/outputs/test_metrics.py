"""The metrics and health endpoint, scraped over real HTTP around a real Synchronizer."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from synchronizer import Synchronizer, opts
from synchronizer.errors import ConfigError
from synchronizer.model import Action
from synchronizer.outputs.metrics import MetricsServer
from tests.unit.outputs.common import change

SECRET = "s3cr3t-Pa55word"


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback test URL
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def start_sync(tmp_path: Path, *lines: str) -> Synchronizer:
    conf_path = tmp_path / "s.conf"
    conf_path.write_text(
        "\n".join(
            [
                "[DEFAULT]",
                "sinks =",
                f"transport_url = rabbit://admin:{SECRET}@127.0.0.1:1/",
                *lines,
            ]
        )
        + "\n"
    )
    sync = Synchronizer(opts.parse(["--config-file", str(conf_path)], setup_logging=False))
    sync.start()
    return sync


def serve(tmp_path: Path):
    """A started Synchronizer without plugins, its metrics on 127.0.0.1, an ephemeral port."""
    sync = start_sync(tmp_path, "plugins =")
    server = MetricsServer(sync, "127.0.0.1", 0)
    server.start()
    yield sync, f"http://127.0.0.1:{server.port}"
    server.stop()
    sync.stop()


@pytest.fixture
def served(tmp_path):
    yield from serve(tmp_path)


@pytest.fixture(scope="module")
def served_once(tmp_path_factory):
    """One server for the tests that only read."""
    yield from serve(tmp_path_factory.mktemp("metrics"))


@pytest.mark.parametrize(
    ("path", "code", "ctype"),
    [
        ("/metrics", 200, "text/plain"),
        ("/metrics?name[]=synchronizer_entities", 200, "text/plain"),
        ("/healthz", 200, "application/json"),
        ("/health", 200, "application/json"),
        ("/healthz?verbose=1", 200, "application/json"),
        ("/", 404, "text/plain"),
        ("/metrics/extra", 404, "text/plain"),
        ("/secrets", 404, "text/plain"),
    ],
)
def test_paths_answer_with_their_status_and_type(served_once, path, code, ctype):
    """/metrics is Prometheus text, /healthz (or /health) is JSON; any other path is a 404."""
    _, base = served_once
    got_code, got_type, _ = fetch(base + path)
    assert (got_code, got_type.split(";")[0]) == (code, ctype)


def test_metrics_follow_the_view_and_the_subscribers(served):
    """Entities, dispatched changes and a subscriber's deliveries show in the next scrape."""
    sync, base = served
    sub = sync.register(None, lambda item: None, name="probe")
    assert sub.wait_idle(5)  # its synced marker
    before = fetch(base + "/metrics")[2]
    assert sample(before, "synchronizer_entities") == 0
    assert sample(before, "synchronizer_subscriber_delivered_total", subscriber="probe") == 1
    sync.dispatcher.dispatch([change(k, action=Action.CREATE) for k in ("a", "b", "c")])
    sync.dispatcher.dispatch([change("a")])  # the same state again: dropped
    assert sub.wait_idle(5)
    after = fetch(base + "/metrics")[2]
    assert sample(after, "synchronizer_entities") == 3
    assert sample(after, "synchronizer_dispatched_total", outcome="create") == 3
    assert sample(after, "synchronizer_dispatched_total", outcome="dropped") == 1
    assert sample(after, "synchronizer_subscriber_delivered_total", subscriber="probe") == 4
    assert sample(after, "synchronizer_subscriber_backlog", subscriber="probe") == 0


def test_health_without_collectors_is_healthy(served):
    """With no collector configured there is nothing to wait for: 200 and no plugins."""
    _, base = served
    code, _, body = fetch(base + "/healthz")
    assert code == 200
    assert json.loads(body) == {"healthy": True, "plugins": {}}


def test_health_and_poll_metrics_follow_a_collector(tmp_path):
    """A failing collector makes health 503 and counts failures; once it lists: 200, its changes."""
    things = tmp_path / "things.json"
    things.write_text(json.dumps("FAIL"))
    sync = start_sync(
        tmp_path,
        "plugins = tests.helpers.plugins:FileCollector",
        "[filecollector]",
        f"path = {things}",
        "period = 0.2",
        "max_backoff = 0.2",
    )
    server = MetricsServer(sync, "127.0.0.1", 0)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    plugin = "filecollector"  # a class path's collector is known by its name
    try:
        wait_for(lambda: fetch(base + "/healthz")[0] == 503)
        report = json.loads(fetch(base + "/healthz")[2])
        assert report["healthy"] is False
        assert report["plugins"][plugin]["healthy"] is False
        wait_for(lambda: "synchronizer_plugin_failures_total" in fetch(base + "/metrics")[2])
        things.write_text(json.dumps({"a": "up", "b": "up"}))
        assert sync.wait_ready(20)
        wait_for(lambda: fetch(base + "/healthz")[0] == 200)
        text = fetch(base + "/metrics")[2]
        assert sample(text, "synchronizer_poll_changes_total", plugin=plugin, action="create") == 2
        assert (
            sample(text, "synchronizer_poll_cycles_total", plugin=plugin, outcome="complete") >= 1
        )
        assert sample(text, "synchronizer_entities") == 2
    finally:
        server.stop()
        sync.stop()


def test_no_endpoint_shows_a_credential(served):
    """Neither /metrics nor /healthz carries the transport URL's password."""
    sync, base = served
    sync.dispatcher.dispatch([change("a", action=Action.CREATE)])
    for path in ("/metrics", "/healthz"):
        assert SECRET not in fetch(base + path)[2]


def test_a_port_in_use_is_a_config_error(served):
    """Binding a port another socket holds fails with a ConfigError naming host and port."""
    sync, _ = served
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}"):
            MetricsServer(sync, "127.0.0.1", port)


def test_stop_closes_the_port(tmp_path):
    """After stop() nothing answers on the metrics port."""
    sync = start_sync(tmp_path, "plugins =")
    server = MetricsServer(sync, "127.0.0.1", 0)
    server.start()
    port = server.port
    assert fetch(f"http://127.0.0.1:{port}/healthz")[0] == 200
    server.stop()
    sync.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass
