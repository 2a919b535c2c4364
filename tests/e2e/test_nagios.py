"""The real daemon against a real Nagios Core 4 (Debian's nagios4-core and nagios4-cgi).

Nagios runs from ``tests/e2e/nagios/`` on 127.0.0.1:8098 behind basic auth,
with passive checks only, so every state is one the test forces through the
external command file.  One daemon polls ``statusjson.cgi`` with the
``nagios.service`` and ``nagios.host`` collectors every few seconds and
streams to a consumer in this process.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from synchronizer import opts
from synchronizer.outputs import client
from synchronizer_plugins.nagios.services import VOLATILE
from tests.e2e.stream import Stream, brief, cycles, of
from tests.functional.conftest import QUEUE_PATTERNS, _delete_queues
from tests.helpers.daemon import Daemon

PERIOD = 4.0
URL = "http://127.0.0.1:8098/nagios/cgi-bin/statusjson.cgi"
TYPES = ("nagios.service", "nagios.host")
COLLECTORS = {"nagios.service": "nagios.service", "nagios.host": "nagios.host"}
NAGIOS_DIR = Path(
    os.environ.get("NAGIOS_E2E_DIR") or Path(os.environ.get("TMPDIR", "/tmp")) / "e2e-nagios"
)


@dataclasses.dataclass
class Stack:
    nagios: Path
    daemon: Daemon
    stream: Stream
    conf_path: Path

    def command(self, line: str) -> None:
        subprocess.run(["bash", str(self.nagios), "command", line], check=True, timeout=30)

    def service_result(self, host: str, service: str, code: int, output: str) -> None:
        self.command(f"PROCESS_SERVICE_CHECK_RESULT;{host};{service};{code};{output}")

    def host_result(self, host: str, code: int, output: str) -> None:
        self.command(f"PROCESS_HOST_CHECK_RESULT;{host};{code};{output}")

    def after_a_cycle(self, plugin: str = "nagios.service") -> int:
        n = cycles(self.daemon, plugin)
        assert self.daemon.wait_until(lambda: cycles(self.daemon, plugin) > n, PERIOD * 4)
        return cycles(self.daemon, plugin)


@pytest.fixture(scope="module")
def stack(nagios: Path, tmp_path_factory) -> Iterator[Stack]:
    from tests.e2e.conftest import _kit_env

    u = uuid.uuid4().hex[:10]
    conf_path = tmp_path_factory.mktemp("e2e-nagios") / "synchronizer.conf"
    transport = _kit_env().get("TRANSPORT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
    group = f"url = {URL}\nusername = nagiosadmin\npassword = nagios\nperiod = {PERIOD}\n"
    conf_path.write_text(
        "[DEFAULT]\n"
        "plugins = nagios.service, nagios.host\n"
        "sinks = message\n"
        f"transport_url = {transport}\n"
        f"message_topic = synchronizer_{u}\n"
        f"rpc_topic = view_{u}\n"
        f"notification_pool = pool-{u}\n"
        f"[nagios.service]\n{group}max_backoff = 2\n"
        f"[nagios.host]\n{group}max_backoff = 2\n"
    )
    # A known world first: every host UP and every service OK.  Through DOWN
    # and WARNING: an object whose first result is UP or OK keeps
    # last_state_change 0, and Nagios sets it later (on a recheck, or when a
    # host's service first turns to a problem): a real update, which the
    # tests below would count.
    for host in ("compute-a", "compute-b"):
        for code in (1, 0):
            line = f"PROCESS_HOST_CHECK_RESULT;{host};{code};e2e start"
            subprocess.run(["bash", str(nagios), "command", line], check=True)
    for host, service in (("compute-a", "load"), ("compute-a", "disk"), ("compute-b", "load")):
        for code in (1, 0):  # through WARNING, for the same reason
            line = f"PROCESS_SERVICE_CHECK_RESULT;{host};{service};{code};e2e start"
            subprocess.run(["bash", str(nagios), "command", line], check=True)
    time.sleep(2)  # Nagios writes its status file every second
    daemon = Daemon(conf_path)
    volatile = dict.fromkeys(TYPES, VOLATILE)
    s = Stack(nagios, daemon, Stream(daemon, COLLECTORS, volatile), conf_path)
    daemon.start()
    handle = None
    try:
        daemon.wait_log("nagios.service: full cycle", timeout=60)
        daemon.wait_log("nagios.host: full cycle", timeout=60)
        consumer_conf = opts.parse(["--config-file", str(conf_path)], setup_logging=False)
        handle = client.watch(consumer_conf, TYPES, s.stream.on_item, pool=f"consumer-{u}")
        assert s.stream.synced.wait(60), "the consumer never got the daemon's view"
        yield s
    finally:
        if handle is not None:
            handle.stop()
        daemon.stop()
        _delete_queues([p.format(u=u) for p in QUEUE_PATTERNS])


def test_the_configured_hosts_and_services_are_listed(stack: Stack):
    world = stack.stream.live()
    assert {k for t, k in world if t == "nagios.service"} == {
        "compute-a/load",
        "compute-a/disk",
        "compute-b/load",
    }
    assert {k for t, k in world if t == "nagios.host"} == {"compute-a", "compute-b"}
    assert {c.entity.state for c in world.values()} == {"OK", "UP"}
    load = world[("nagios.service", "compute-a/load")].entity
    assert (load.parent.type, load.parent.key) == ("nova.host", "compute-a")


def test_a_service_forced_through_its_states_gives_exactly_those_updates(stack: Stack):
    """OK → WARNING → CRITICAL → OK: one update each, every one within one period."""
    stream, key = stack.stream, "compute-a/load"
    assert stream.live()[("nagios.service", key)].entity.state == "OK"
    for code, state in ((1, "WARNING"), (2, "CRITICAL"), (0, "OK")):
        stack.after_a_cycle()
        mark = stream.mark()
        forced = time.monotonic()
        stack.service_result("compute-a", "load", code, f"{state} - load forced by the e2e test")
        items = stream.wait_for(
            lambda items, state=state: any(r.change.entity.state == state for r in of(items, key)),
            mark,
            timeout=PERIOD * 4,
        )
        arrived = next(r for r in of(items, key) if r.change.entity.state == state)
        # Nagios writes its status file every second; then one poll period.
        assert arrived.at - forced <= PERIOD + 3, f"{state} took {arrived.at - forced:.1f} s"
        assert arrived.change.action == "update"
        stack.after_a_cycle()
        stack.after_a_cycle()
        mine = of(stream.since(mark), key)
        assert [r.change.entity.state for r in mine] == [state], brief(mine)
        others = [r for r in stream.since(mark) if r.change.key != key]
        assert others == [], brief(others)


def test_a_host_forced_down_gives_one_update(stack: Stack):
    stream = stack.stream
    stack.after_a_cycle("nagios.host")
    mark = stream.mark()
    stack.host_result("compute-b", 1, "DOWN - unplugged by the e2e test")
    stream.wait_for(
        lambda items: any(r.change.entity.state == "DOWN" for r in of(items, "compute-b")),
        mark,
        timeout=PERIOD * 4,
    )
    stack.after_a_cycle("nagios.host")
    stack.after_a_cycle("nagios.host")
    items = stream.since(mark)
    assert [(r.change.key, r.change.action, r.change.entity.state) for r in items] == [
        ("compute-b", "update", "DOWN")
    ], brief(items)


def test_rechecks_in_the_same_state_cause_no_update(stack: Stack):
    """New check results (last_check, output) without a state change tell nothing."""
    stream = stack.stream
    stack.after_a_cycle()
    mark = stream.mark()
    for n in range(3):
        stack.service_result("compute-a", "disk", 0, f"OK - disk fine, check {n}")
        stack.host_result("compute-a", 0, f"UP - check {n}")
        time.sleep(1.5)
    stack.after_a_cycle()
    stack.after_a_cycle()
    items = stream.since(mark)
    assert items == [], brief(items)


def test_a_service_removed_from_the_configuration_is_deleted(stack: Stack):
    stream = stack.stream
    objects = NAGIOS_DIR / "etc" / "objects.cfg"
    text = objects.read_text()
    block = re.search(
        r"define service \{[^}]*host_name\s+compute-a\s+service_description\s+disk\s*\}", text
    )
    assert block, "objects.cfg has no compute-a/disk service"
    objects.write_text(text.replace(block.group(0), ""))
    mark = stream.mark()
    pid = int((NAGIOS_DIR / "run" / "nagios.pid").read_text().split()[0])
    os.kill(pid, signal.SIGHUP)
    stream.wait_for(lambda items: bool(of(items, "compute-a/disk", "delete")), mark, timeout=30)
    stack.after_a_cycle()
    stack.after_a_cycle()
    items = stream.since(mark)
    deleted = [r for r in items if r.change.action == "delete"]
    assert [r.change.key for r in deleted] == ["compute-a/disk"], brief(items)
    assert of(items, "compute-a/disk")[-1].change.action == "delete"
    # The reload re-reads states: the others keep theirs and tell nothing.
    others = [r for r in items if r.change.key != "compute-a/disk"]
    assert others == [], brief(others)
