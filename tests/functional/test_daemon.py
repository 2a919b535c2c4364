"""The real daemon as a subprocess: embedded default, edits, kills, signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.helpers.daemon import REPO, Daemon, settle

EMBEDDED = REPO / "etc" / "synchronizer"
STATIC_COUNT = 6


@pytest.fixture
def embedded(tmp_path: Path) -> Path:
    """A copy of the embedded default (config + static folder) with a short period."""
    shutil.copytree(EMBEDDED / "static", tmp_path / "static")
    conf = (EMBEDDED / "synchronizer.conf").read_text().replace("period = 2", "period = 0.3")
    (tmp_path / "synchronizer.conf").write_text(conf)
    return tmp_path


def test_embedded_default_prints_the_static_entities(embedded):
    """The shipped config prints every static entity once as a create."""
    with Daemon(embedded / "synchronizer.conf") as d:
        records = d.wait_records(STATIC_COUNT)
        settle(1.0)
        assert len(d.records) == STATIC_COUNT
    assert {r["action"] for r in records} == {"create"}
    keys = {(r["type"], r["key"]) for r in records}
    assert ("nova.zone", "nova") in keys
    assert ("nova.host", "compute-1") in keys
    assert all(r["source"] == {"kind": "poll", "plugin": "static"} for r in records)


def test_edit_gives_one_update_and_removal_one_delete(embedded):
    """Editing a YAML file prints exactly one update; removing a file one delete."""
    with Daemon(embedded / "synchronizer.conf") as d:
        d.wait_records(STATIC_COUNT)
        hosts = embedded / "static" / "hosts.yaml"
        hosts.write_text(hosts.read_text().replace("state: up\n", "state: down\n", 1))
        records = d.wait_records(STATIC_COUNT + 1)
        settle(1.0)
        (embedded / "static" / "volumes.yaml").unlink()
        records = d.wait_records(STATIC_COUNT + 2)
        settle(1.0)
        records = list(d.records)
    tail = [(r["action"], r["type"], r["key"], r["state"]) for r in records[STATIC_COUNT:]]
    assert tail == [
        ("update", "nova.host", "compute-1", "down"),
        ("delete", "cinder.volume", "0b8e3a52-7a2e-4d8c-8c71-5c1f6f5c2b10", "in-use"),
    ]


def test_killed_worker_is_restarted_without_duplicates(embedded):
    """SIGKILL of the collector worker restarts it, and nothing is printed twice."""
    with Daemon(embedded / "synchronizer.conf") as d:
        d.wait_records(STATIC_COUNT)
        d.wait_log("full cycle listed")
        (pid,) = d.worker_pids()
        os.kill(pid, signal.SIGKILL)
        d.wait_log("Started worker static", count=2, timeout=20)
        # It starts from the saved view: its first listing finds nothing new.
        d.wait_log("starting from the saved view (6 entities)", timeout=20)
        d.wait_log("full cycle listed 6 entities, 0 created", timeout=20)
        settle(1.0)
        assert len(d.records) == STATIC_COUNT
        assert d.worker_pids()
        assert d.worker_pids() != [pid]
        # The restarted worker still reports real changes.
        (embedded / "static" / "zones.yaml").write_text(
            (embedded / "static" / "zones.yaml").read_text().replace("available", "degraded")
        )
        records = d.wait_records(STATIC_COUNT + 1)
    assert records[-1]["action"] == "update"
    assert records[-1]["state"] == "degraded"


def test_deletes_missed_while_a_worker_was_dead_are_found(embedded):
    """A file removed while the worker is dead gives one final-state-unknown delete."""
    with Daemon(embedded / "synchronizer.conf") as d:
        d.wait_records(STATIC_COUNT)
        d.wait_log("full cycle listed")
        (pid,) = d.worker_pids()
        os.kill(pid, signal.SIGKILL)
        (embedded / "static" / "volumes.yaml").unlink()
        records = d.wait_records(STATIC_COUNT + 1)
        settle(1.0)
        records = list(d.records)
    assert len(records) == STATIC_COUNT + 1
    assert records[-1]["action"] == "delete"
    assert records[-1]["final_state_unknown"] is True
    assert records[-1]["state"] == "in-use"


def test_sighup_adds_a_newly_configured_plugin(embedded, tmp_path):
    """After SIGHUP a plugin added to the config runs; the static worker is not restarted."""
    things = tmp_path / "things.json"
    things.write_text(json.dumps({"x": "up", "y": "up"}))
    conf = embedded / "synchronizer.conf"
    with Daemon(conf) as d:
        d.wait_records(STATIC_COUNT)
        pids = d.worker_pids()
        text = conf.read_text().replace(
            "plugins = static", "plugins = static,tests.helpers.plugins:FileCollector"
        )
        conf.write_text(text + f"\n[filecollector]\npath = {things}\nperiod = 0.3\n")
        d.signal(signal.SIGHUP)
        records = d.wait_records(STATIC_COUNT + 2)
        assert pids[0] in d.worker_pids()
    assert {(r["type"], r["key"]) for r in records[STATIC_COUNT:]} == {
        ("test.thing", "x"),
        ("test.thing", "y"),
    }


def test_sigterm_exits_zero_within_ten_seconds(embedded):
    """SIGTERM stops the daemon and its workers cleanly, exit status 0."""
    d = Daemon(embedded / "synchronizer.conf").start()
    d.wait_records(STATIC_COUNT)
    workers = d.worker_pids()
    t0 = time.monotonic()
    assert d.stop(timeout=10) == 0
    assert time.monotonic() - t0 < 10
    for pid in workers:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )


def test_tells_systemd_it_is_ready_after_the_first_snapshot(embedded, tmp_path):
    """READY=1 reaches NOTIFY_SOCKET once the first snapshot was delivered."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    with Daemon(embedded / "synchronizer.conf", {"NOTIFY_SOCKET": path}) as d:
        messages = []
        while not any(m.startswith(b"READY=1") for m in messages):
            messages.append(sock.recv(4096))
        # READY means the view holds the first snapshot (the jsonl sink prints
        # it on its own thread, possibly a moment later).
        assert len(d.wait_records(STATIC_COUNT)) == STATIC_COUNT
    sock.close()
    assert any(m.startswith(b"STATUS=6 entities") for m in messages)


def test_broken_plugins_are_reported_and_others_run(embedded):
    """Unknown and broken plugins are logged clearly while the static plugin runs."""
    conf = embedded / "synchronizer.conf"
    conf.write_text(
        conf.read_text().replace(
            "plugins = static",
            "plugins = no-such-plugin,tests.helpers.plugins:RaisesInInit,static",
        )
    )
    with Daemon(conf) as d:
        d.wait_records(STATIC_COUNT)
        d.wait_log("broken plugin constructor")
        assert d.count_logs("'no-such-plugin' is not an entry point") >= 1
