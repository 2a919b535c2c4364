"""The example graph consumer follows the real daemon through a scripted day of changes.

The daemon runs as a subprocess polling the fake cloud (instances, hosts,
zones, volumes) with its ``message`` sink on the real broker.  The example's
graph is followed twice: in this process (its ``TopologyGraph`` fed by
``client.watch``) and as the example program itself, a subprocess whose
SIGUSR1 summaries are parsed.  After each change in the cloud, the graph
must equal the one derived from the cloud's own records, and the graph
rebuilt from the daemon's ``get_all``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from synchronizer import opts
from synchronizer.outputs import client
from synchronizer_fakecloud.server import FakeCloud
from tests.helpers.cloudconf import service_credentials
from tests.helpers.daemon import REPO, Daemon

pytestmark = pytest.mark.broker

EXAMPLE = REPO / "examples" / "graph_consumer.py"
PERIOD = 0.5
PLUGINS = ("nova.instance", "nova.host", "nova.zone", "cinder.volume")
ZONE = "nova"  # populate's single zone


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("graph_consumer", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()
Node = tuple[str, str]


def truth(cloud: FakeCloud) -> tuple[dict[Node, str], set[tuple[Node, Node, str]]]:
    """Nodes (with state) and edges as the fake cloud's records say."""
    nodes: dict[Node, str] = {}
    edges: set[tuple[Node, Node, str]] = set()
    zones: dict[str, bool] = {}
    for host in cloud.keys("hypervisors"):
        doc = cloud.get("hypervisors", host)
        state = ("up" if doc["state"] == "up" else "down") + (
            "" if doc["status"] == "enabled" else "-disabled"
        )
        nodes["nova.host", host] = state
        edges.add((("nova.host", host), ("nova.zone", ZONE), "parent"))
        zones[ZONE] = zones.get(ZONE, False) or doc["status"] == "enabled"
    for zone, available in zones.items():
        nodes["nova.zone", zone] = "available" if available else "unavailable"
    for sid in cloud.keys("servers"):
        doc = cloud.get("servers", sid)
        node = ("nova.instance", sid)
        nodes[node] = doc["status"]
        edges.add((node, ("nova.host", doc["OS-EXT-SRV-ATTR:host"]), "parent"))
        for volume in doc["os-extended-volumes:volumes_attached"]:
            edges.add((node, ("cinder.volume", volume["id"]), "attached"))
    for vid in cloud.keys("volumes"):
        doc = cloud.get("volumes", vid)
        nodes["cinder.volume", vid] = doc["status"]
        for attachment in doc["attachments"]:
            edges.add(
                (("cinder.volume", vid), ("nova.instance", attachment["server_id"]), "attached")
            )
    return nodes, edges


def on_down_hosts(cloud: FakeCloud) -> int:
    down = {h for h in cloud.keys("hypervisors") if cloud.get("hypervisors", h)["state"] != "up"}
    return sum(
        cloud.get("servers", s)["OS-EXT-SRV-ATTR:host"] in down for s in cloud.keys("servers")
    )


def summary_lines(cloud: FakeCloud) -> list[str]:
    """The per-type lines and the down-host line the example must print for the cloud."""
    nodes, _ = truth(cloud)
    by_type: dict[str, Counter[str]] = {}
    for (type_, _key), state in nodes.items():
        by_type.setdefault(type_, Counter())[state] += 1
    lines = [
        f"{type_}: {sum(states.values())} ("
        + ", ".join(f"{s}: {n}" for s, n in sorted(states.items()))
        + ")"
        for type_, states in sorted(by_type.items())
    ]
    return [*lines, f"instances on down hosts: {on_down_hosts(cloud)}"]


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.2)


class ExampleProcess:
    """``python examples/graph_consumer.py`` with its stdout read line by line."""

    def __init__(self, conf_path: Path, pool: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--config-file", str(conf_path), "--pool", pool],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1"),
        )
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_line(self, pattern: str, timeout: float = 60.0) -> str:
        regex = re.compile(pattern)
        with self.cond:
            ok = self.cond.wait_for(lambda: any(regex.search(x) for x in self.lines), timeout)
            assert ok, f"{pattern!r} not printed; got {self.lines[-10:]}"
            return next(x for x in self.lines if regex.search(x))

    def summary(self, timeout: float = 10.0) -> list[str]:
        """Ask for a summary (SIGUSR1) and return its lines after the header."""
        with self.cond:
            start = len(self.lines)
        self.proc.send_signal(signal.SIGUSR1)
        with self.cond:
            ok = self.cond.wait_for(
                lambda: any(x.startswith("instances on down hosts:") for x in self.lines[start:]),
                timeout,
            )
            assert ok, f"no summary printed; got {self.lines[start:]}"
            block = self.lines[start:]
        end = next(i for i, x in enumerate(block) if x.startswith("instances on down hosts:"))
        head = max(i for i, x in enumerate(block[: end + 1]) if x.startswith("== summary"))
        return block[head + 1 : end + 1]

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return self.proc.stderr.read()


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        fake.populate(servers=8, hosts=3, volumes=3)
        fake.create("volumes", name="spare")
        yield fake


@pytest.fixture
def conf_path(cloud: FakeCloud, transport_url: str, unique: str, tmp_path: Path) -> Path:
    path = tmp_path / "synchronizer.conf"
    lines = [
        "[DEFAULT]",
        f"plugins = {', '.join(PLUGINS)}",
        "sinks = message",
        f"transport_url = {transport_url}",
        f"message_topic = synchronizer_{unique}",
        f"rpc_topic = view_{unique}",
        f"notification_pool = pool-{unique}",
        *service_credentials(cloud, timeout=None),
    ]
    for plugin in PLUGINS:
        lines += [f"[{plugin}]", f"period = {PERIOD}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def scripted_changes(cloud: FakeCloud) -> Iterator[str]:
    """Change the cloud step by step; yield each step's name after making it."""
    hosts = cloud.keys("hypervisors")
    servers = cloud.keys("servers")
    sid = cloud.create("servers", name="newcomer", host=hosts[0], flavor="m1.large")
    cloud.create("volumes", name="data", server=sid)
    yield "create a server with a volume"
    cloud.update("servers", servers[0], status="SHUTOFF")
    cloud.update("servers", servers[1], status="ERROR")
    yield "update states"
    victim = next(
        s for s in servers if cloud.get("servers", s)["os-extended-volumes:volumes_attached"]
    )
    cloud.delete("servers", victim)
    yield "delete a server with a volume attached"
    mover = next(
        s for s in servers[2:] if cloud.get("servers", s)["OS-EXT-SRV-ATTR:host"] != hosts[1]
    )
    cloud.update("servers", mover, host=hosts[1])
    yield "move a server to another host"
    cloud.update("hypervisors", hosts[1], state="down")
    yield "a host goes down"
    cloud.update("hypervisors", hosts[2], status="disabled", state="down")
    spare = next(v for v in cloud.keys("volumes") if cloud.get("volumes", v)["name"] == "spare")
    cloud.delete("volumes", spare)  # Cinder deletes only volumes that are not in use
    yield "a second host goes down and is disabled, a spare volume is deleted"


def test_example_graph_follows_the_cloud(cloud, conf_path, unique):
    """After every scripted change, both graphs equal the cloud's and the daemon's view."""
    consumer_conf = opts.parse(["--config-file", str(conf_path)], setup_logging=False)
    checked = []
    with Daemon(conf_path) as d:
        d.wait_log("full cycle listed", count=len(PLUGINS), timeout=60)
        graph = example.TopologyGraph()
        handle = client.watch(consumer_conf, None, graph.apply, pool=f"consumer-{unique}")
        program = ExampleProcess(conf_path, f"other-{unique}")
        try:
            assert graph.synced.is_set()
            program.wait_line(r"^synced: \d+ entities$")
            check(cloud, graph, program, consumer_conf, "start")
            for step in scripted_changes(cloud):  # one change at a time
                check(cloud, graph, program, consumer_conf, step)
                checked.append(step)
        finally:
            handle.stop()
            errors = program.stop()
    assert len(checked) == 6
    assert on_down_hosts(cloud) > 0
    assert "Traceback" not in errors
    assert program.proc.returncode == 0


def check(cloud: FakeCloud, graph: Any, program: ExampleProcess, conf: Any, step: str) -> None:
    """The in-process graph, the get_all view and the program's summary match the cloud."""
    nodes, edges = truth(cloud)
    wait_for(lambda: (graph.states(placeholders=True), graph.edges()) == (nodes, edges))
    assert graph.states(placeholders=True) == nodes, step
    assert graph.edges() == edges, step
    view = example.TopologyGraph().load(client.get_all(conf).entities)
    assert (view.states(placeholders=True), view.edges()) == (nodes, edges), step
    assert len(graph.instances_on_down_hosts()) == on_down_hosts(cloud), step
    expected = summary_lines(cloud)
    wait_for(lambda: program.summary() == expected, timeout=20)
    assert program.summary() == expected, step
