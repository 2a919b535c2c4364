"""The real daemon against a cloud that misbehaves in ways no client sees as an error.

The daemon runs as a subprocess with the ``jsonl`` sink on its stdout (the
consumer's stream) and metrics on a loopback port; the fake cloud is a real
HTTP server in this process, driven through the faults a proxy or a buggy
API makes: a record displaced across pages, a page without its next link, a
record with a field of the wrong type or value, a listing that never
answers, and an API whose clock runs behind the daemon's.  Each test ends
with the consumer's view equal to the cloud.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from synchronizer_fakecloud.clock import Clock
from synchronizer_fakecloud.server import FakeCloud
from synchronizer_fakecloud.testbed import free_port
from tests.helpers.cloudconf import service_credentials
from tests.helpers.daemon import Daemon, settle

PERIOD = 0.5
HUNG = "filecollector"  # the class path's plugin, known by its name
KINDS = {"nova.instance": "servers", "cinder.volume": "volumes"}


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        yield fake


@pytest.fixture(autouse=True)
def fresh(cloud: FakeCloud) -> None:
    cloud.reset()


def write_config(
    path: Path, cloud: FakeCloud, plugins: dict[str, dict[str, Any]], **core: Any
) -> Path:
    """A daemon config polling ``plugins`` (name -> options) of the fake cloud."""
    lines = [
        "[DEFAULT]",
        "plugins = " + ", ".join(plugins),
        "sinks = jsonl",
        "jsonl_path = -",
        "worker_restart_delay = 0.5",
        "worker_restart_max_delay = 1",
        *(f"{k} = {v}" for k, v in core.items()),
        *service_credentials(cloud, timeout=5),
    ]
    for name, options in plugins.items():
        lines.append(f"[{name}]")
        defaults: dict[str, Any] = {"period": PERIOD, "page_size": 5}
        if name == "nova.instance":
            defaults["snapshot_interval"] = 0  # full listings only, unless a test says
        lines += [f"{k} = {v}" for k, v in {**defaults, **options}.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def view(records: list[dict[str, Any]], etype: str) -> dict[str, dict[str, Any]]:
    """The world a consumer rebuilds from the stream: the last state of each live key."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["type"] != etype:
            continue
        if r["action"] == "delete":
            out.pop(r["key"], None)
        else:
            out[r["key"]] = r
    return out


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def cloud_equals_view(d: Daemon, cloud: FakeCloud, etype: str) -> bool:
    return set(view(list(d.records), etype)) == set(cloud.keys(KINDS[etype]))


def full_cycles(d: Daemon, plugin: str) -> int:
    return d.count_logs(f"{plugin}: full cycle listed")


def deletes(d: Daemon) -> list[str]:
    return [r["key"] for r in list(d.records) if r["action"] == "delete"]


def healthz(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def metric(port: int, sample: str) -> float:
    """One sample of /metrics, named with its labels (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
    return 0.0


# -- lost records: no false delete survives the next good listing -------------------


def test_a_record_displaced_across_pages_is_never_deleted(cloud, tmp_path):
    """A walk listing one server twice and another on no page deletes nothing, says why."""
    cloud.populate(servers=30, hosts=2)
    conf = write_config(tmp_path / "s.conf", cloud, {"nova.instance": {}})
    with Daemon(conf) as d:
        d.wait_records(30, timeout=60)
        cycles = full_cycles(d, "nova.instance")
        cloud.displace("nova", page=2, times=3)
        d.wait_log("InconsistentListing", count=3, timeout=30)
        d.wait_log("nova.instance: full cycle listed 30", count=cycles + 1, timeout=30)
        assert cloud.faults.fired() == {"displace": 3}
        settle(2 * PERIOD)
        assert deletes(d) == []
        assert cloud_equals_view(d, cloud, "nova.instance")


def test_a_file_put_back_prints_its_entities_again(tmp_path):
    """The embedded default: hosts.yaml moved away prints two deletes, put back two creates."""
    embedded = Path(__file__).parents[2] / "etc" / "synchronizer"
    shutil.copytree(embedded / "static", tmp_path / "static")
    conf = tmp_path / "synchronizer.conf"
    conf.write_text(
        (embedded / "synchronizer.conf").read_text().replace("period = 2", "period = 0.3")
    )
    hosts = tmp_path / "static" / "hosts.yaml"
    with Daemon(conf) as d:
        d.wait_records(6, timeout=60)
        hosts.rename(tmp_path / "hosts.yaml")
        d.wait_records(8)
        (tmp_path / "hosts.yaml").rename(hosts)
        records = d.wait_records(10)
        settle(1.0)
        assert len(d.records) == 10
    tail = [(r["action"], r["key"]) for r in records[6:]]
    assert sorted(tail) == [
        ("create", "compute-1"),
        ("create", "compute-2"),
        ("delete", "compute-1"),
        ("delete", "compute-2"),
    ]
    assert [a for a, _ in tail] == ["delete", "delete", "create", "create"]
    assert d.count_logs("listed again after deletes inferred from their absence") == 1


def test_a_nova_page_cut_short_is_an_incomplete_listing(cloud, tmp_path):
    """A full Nova page without its next link is no end of the listing: nothing is deleted."""
    cloud.populate(servers=30, hosts=2)
    conf = write_config(tmp_path / "s.conf", cloud, {"nova.instance": {}})
    with Daemon(conf) as d:
        d.wait_records(30, timeout=60)
        cloud.drop_next("nova", page=0, times=2)
        d.wait_log("came without a next link", count=2, timeout=30)
        cycles = full_cycles(d, "nova.instance")
        d.wait_log("nova.instance: full cycle listed 30", count=cycles + 1, timeout=30)
        assert deletes(d) == []
        assert cloud_equals_view(d, cloud, "nova.instance")


def test_a_mass_delete_from_a_cut_listing_is_held_then_dropped(cloud, tmp_path):
    """25 of 30 volumes gone at once is held (logged, in metrics and healthz), then dropped."""
    cloud.populate(volumes=30)
    port = free_port()
    conf = write_config(tmp_path / "s.conf", cloud, {"cinder.volume": {}}, metrics_port=port)
    with Daemon(conf) as d:
        d.wait_records(30, timeout=60)
        cloud.drop_next("cinder", page=0, times=1)
        d.wait_log("would delete 25 of 30 entities at once (83.3%", timeout=30)
        wait_for(lambda: "held deletes were wrong" in "\n".join(d.logs), 30, "the drop")
        assert deletes(d) == []
        assert d.count_logs("would delete") == 1
        assert cloud_equals_view(d, cloud, "cinder.volume")
        assert healthz(port)["plugins"]["cinder.volume"]["held_deletes"] == 0


def test_a_real_mass_delete_is_held_once_then_confirmed(cloud, tmp_path):
    """20 of 30 volumes really deleted: held for one listing, then every delete goes out."""
    cloud.populate(volumes=30)
    port = free_port()
    conf = write_config(
        tmp_path / "s.conf", cloud, {"cinder.volume": {"period": 2}}, metrics_port=port
    )
    with Daemon(conf) as d:
        d.wait_records(30, timeout=60)
        gone = cloud.keys("volumes")[:20]
        for key in gone:
            cloud.delete("volumes", key)
        d.wait_log("would delete 20 of 30", timeout=30)

        # The worker logs that line, then reports the cycle: the main process's
        # status may lag the log by a moment (and is 0 again after the next listing).
        def held_shown() -> bool:
            held = healthz(port)["plugins"]["cinder.volume"]["held_deletes"]
            gauge = metric(port, 'synchronizer_poll_deletes_held{plugin="cinder.volume"}')
            return (held, gauge) == (20, 20)

        wait_for(held_shown, 1.5, "healthz and the gauge to show the 20 held deletes")
        assert deletes(d) == []
        d.wait_log("lacks 20 held entities again", timeout=30)
        wait_for(lambda: len(deletes(d)) == 20, 10, "the 20 confirmed deletes")
        assert sorted(deletes(d)) == sorted(gone)
        assert cloud_equals_view(d, cloud, "cinder.volume")


def test_a_volume_record_without_an_id_deletes_nothing(cloud, tmp_path):
    """A listing holding a record that names no volume is incomplete: no delete is inferred."""
    cloud.populate(volumes=12)
    victim = cloud.keys("volumes")[4]
    conf = write_config(tmp_path / "s.conf", cloud, {"cinder.volume": {}})
    with Daemon(conf) as d:
        d.wait_records(12, timeout=60)
        cloud.bad_record("cinder", victim, "id", None)
        d.wait_log("without a usable 'id'", count=2, timeout=30)
        assert deletes(d) == []
        cloud.clear_faults()
        cycles = full_cycles(d, "cinder.volume")
        d.wait_log("cinder.volume: full cycle listed 12", count=cycles + 1, timeout=30)
        assert cloud_equals_view(d, cloud, "cinder.volume")


# -- one bad record blocks nothing ------------------------------------------------


def test_bad_records_block_neither_ready_nor_other_deletes(cloud, tmp_path):
    """A null vm_state and an integer name: READY comes, 5 real deletes go, in delta mode too."""
    cloud.populate(servers=20, hosts=2)
    servers = cloud.keys("servers")
    nameless, stateless, *others = servers
    cloud.bad_record("nova", nameless, "name", 12345)
    cloud.bad_record("nova", stateless, "OS-EXT-STS:vm_state", None)
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(60)
    options = {"snapshot_interval": 3}
    conf = write_config(tmp_path / "s.conf", cloud, {"nova.instance": options})
    with Daemon(conf, {"NOTIFY_SOCKET": str(notify)}) as d:
        messages = [sock.recv(4096)]
        while not any(m.startswith(b"READY=1") for m in messages):
            messages.append(sock.recv(4096))
        records = d.wait_records(19, timeout=30)
        first = view(records, "nova.instance")
        assert stateless not in first  # never had a good state: absent
        assert first[nameless]["properties"]["name"] == "12345"
        # Delta mode: the stateless server changes (so every delta lists it), others go.
        cloud.update("servers", stateless, status="SHUTOFF")
        for key in others[:5]:
            cloud.delete("servers", key)
        wait_for(lambda: len(deletes(d)) == 5, 30, "five deletes")
        d.wait_log("delta cycle listed", timeout=30)
        assert sorted(deletes(d)) == sorted(others[:5])
        assert d.count_logs(f"nova.instance {stateless} cannot be converted") == 1
        assert d.count_logs(f"nova.instance {nameless} cannot be converted") == 0
        cloud.clear_faults()
        wait_for(lambda: stateless in view(list(d.records), "nova.instance"), 30, "its return")
        assert cloud_equals_view(d, cloud, "nova.instance")
    sock.close()


def test_a_bad_record_keeps_its_last_good_state(cloud, tmp_path):
    """A server that turns unconvertible keeps its state and is not deleted; fixed, it updates."""
    cloud.populate(servers=10, hosts=1)
    key = cloud.keys("servers")[3]
    conf = write_config(tmp_path / "s.conf", cloud, {"nova.instance": {}})
    with Daemon(conf) as d:
        good = view(d.wait_records(10, timeout=60), "nova.instance")[key]["state"]
        new = "ERROR" if good != "ERROR" else "ACTIVE"
        cloud.bad_record("nova", key, "OS-EXT-STS:vm_state", None)
        cloud.update("servers", key, status=new)
        d.wait_log(f"nova.instance {key} cannot be converted", timeout=30)
        cycles = full_cycles(d, "nova.instance")
        d.wait_log("nova.instance: full cycle listed 9", count=cycles + 3, timeout=30)
        assert view(list(d.records), "nova.instance")[key]["state"] == good
        assert deletes(d) == []
        assert d.count_logs(f"nova.instance {key} cannot be converted") == 1
        cloud.clear_faults()
        wait_for(
            lambda: view(list(d.records), "nova.instance")[key]["state"] == new,
            30,
            "the fixed record's update",
        )


def test_a_bad_record_in_a_restarted_workers_resync_is_not_taken_for_gone(cloud, tmp_path):
    """A worker with no saved view resyncs; a record it cannot convert then is not deleted.

    Found by the fleet soak: a new term's collector starts empty, so its
    first complete listing is a resync, and the dispatcher deletes what the
    resync did not list. The bad record was listed but never sent (the
    worker had no last good state to keep), so its entity went as a false
    delete.  ``state = memory``: the restarted worker is not seeded.
    """
    cloud.populate(servers=10, hosts=1)
    key = cloud.keys("servers")[3]
    conf = write_config(tmp_path / "s.conf", cloud, {"nova.instance": {}}, state="memory")
    with Daemon(conf) as d:
        d.wait_records(10, timeout=60)
        cloud.bad_record("nova", key, "OS-EXT-STS:vm_state", None)
        d.wait_log(f"nova.instance {key} cannot be converted", timeout=30)
        (worker,) = d.worker_pids()
        cycles = full_cycles(d, "nova.instance")
        os.kill(worker, signal.SIGKILL)
        # The restarted worker's first listing (its resync) and the one after.
        wait_for(lambda: full_cycles(d, "nova.instance") >= cycles + 2, 60, "two more cycles")
        assert d.count_logs("Worker nova.instance died") == 1
        assert deletes(d) == []
        assert key in view(list(d.records), "nova.instance")


# -- a hung plugin is noticed ----------------------------------------------------


def test_a_hung_plugin_is_restarted_ready_comes_and_sigterm_exits(cloud, tmp_path):
    """A plugin blocked in Event.wait() is declared hung, restarted, skipped by READY, and
    SIGTERM still ends the daemon within 10 s."""
    things = tmp_path / "things.json"
    things.write_text(json.dumps("HANG"))
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(60)
    port = free_port()
    conf = tmp_path / "s.conf"
    conf.write_text(
        "[DEFAULT]\nplugins = static, tests.helpers.plugins:FileCollector\nsinks = jsonl\n"
        f"jsonl_path = -\nmetrics_port = {port}\nworker_restart_delay = 0.5\n"
        "worker_restart_max_delay = 1\n"
        f"[static]\ndirectory = {Path(__file__).parents[2] / 'etc/synchronizer/static'}\n"
        f"[filecollector]\npath = {things}\nperiod = 0.5\ncycle_timeout = 2\n"
    )
    t0 = time.monotonic()
    d = Daemon(conf, {"NOTIFY_SOCKET": str(notify)}).start()
    try:
        messages = [sock.recv(4096)]
        while not any(m.startswith(b"READY=1") for m in messages):
            messages.append(sock.recv(4096))
        ready_after = time.monotonic() - t0
        d.wait_log(f"{HUNG}: a poll cycle has run for", timeout=20)
        d.wait_log(f"Started worker {HUNG}", count=2, timeout=20)
        report = healthz(port)["plugins"][HUNG]
        status = [m for m in messages if m.startswith(b"STATUS=")]
        assert ready_after < 20
        assert any(f"hung (restarting): {HUNG}".encode() in m for m in status)
        assert report["state"] == "hung"
        assert not report["healthy"]
        assert "over its bound of 2 s" in report["hung"]
        assert metric(port, f'synchronizer_plugin_hung{{plugin="{HUNG}"}}') == 1
        d.wait_log(f"{HUNG}: a poll cycle has run for", count=2, timeout=20)
        stopped = time.monotonic()
        assert d.stop(timeout=10) == 0
        assert time.monotonic() - stopped < 10
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
        sock.close()


def test_a_trickling_api_is_noticed_and_sigterm_exits_while_it_hangs(cloud, tmp_path):
    """An API sending a byte a second (no read timeout fires) hangs the listing: restarted."""
    cloud.populate(servers=10, hosts=1)
    conf = write_config(tmp_path / "s.conf", cloud, {"nova.instance": {"cycle_timeout": 3}})
    with Daemon(conf) as d:
        d.wait_records(10, timeout=60)
        cloud.trickle("nova", 1.0)
        d.wait_log("nova.instance: a poll cycle has run for", timeout=20)
        d.wait_log("declared hung; the worker exits and is restarted", timeout=5)
        d.wait_log("Started worker nova.instance", count=2, timeout=20)
        settle(1.0)  # the restarted worker is hung on the trickle again
        stopped = time.monotonic()
        d.signal(signal.SIGTERM)
        assert d.proc.wait(10) == 0
        assert time.monotonic() - stopped < 10
    cloud.clear_faults()


def test_an_api_that_never_answers_is_cut_by_the_client_timeout(cloud, tmp_path):
    """A hung API (accepted, never answered) fails the cycle at the read timeout: no watchdog."""
    cloud.populate(servers=10, hosts=1)
    conf = write_config(tmp_path / "s.conf", cloud, {"nova.instance": {}})
    with Daemon(conf) as d:
        d.wait_records(10, timeout=60)
        cloud.hang("nova")
        d.wait_log("INCOMPLETE (", timeout=30)
        cloud.clear_faults()
        d.wait_log("service back after", timeout=60)
        assert d.count_logs("declared hung") == 0
        assert deletes(d) == []


# -- the API's clock behind the daemon's ------------------------------------------


def test_delta_polls_miss_nothing_with_the_daemons_clock_60_s_ahead(tmp_path):
    """changes-since is counted on Nova's clock: every change comes, by delta listings only."""
    with FakeCloud(clock=Clock(offset=-60)) as skewed:
        skewed.populate(servers=12, hosts=1)
        options = {"snapshot_interval": 3600}
        conf = write_config(tmp_path / "s.conf", skewed, {"nova.instance": options})
        with Daemon(conf) as d:
            d.wait_records(12, timeout=60)
            d.wait_log("delta cycle listed", timeout=30)
            servers = skewed.keys("servers")
            before = len(d.records)
            for i, key in enumerate(servers[:4]):
                skewed.update("servers", key, status="SHUTOFF")
                d.wait_records(before + i + 1, timeout=10)
            skewed.delete("servers", servers[5])
            d.wait_records(before + 5, timeout=10)
            records = list(d.records)
            assert d.count_logs("full cycle listed") == 1
        tail = [(r["action"], r["key"], r["state"]) for r in records[before:]]
        assert tail == [
            *(("update", key, "SHUTOFF") for key in servers[:4]),
            ("delete", servers[5], "DELETED"),
        ]
