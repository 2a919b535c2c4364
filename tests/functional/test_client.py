"""An out-of-process consumer: get_all over RPC + the stream, no gap, no duplicate."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from synchronizer import opts
from synchronizer.model import Change, Synced
from synchronizer.outputs import client
from tests.helpers.daemon import Daemon

pytestmark = pytest.mark.broker

N = 10_000


def write_things(path: Path, round_: int, changed: int) -> dict[str, str]:
    things = {f"t{i:05d}": "up" for i in range(N)}
    for i in range(changed):
        things[f"t{i:05d}"] = f"r{round_}"
    path.write_text(json.dumps(things))
    return things


def test_late_consumer_gets_view_then_every_change(tmp_path, transport_url, unique):
    """A consumer starting during a burst rebuilds exactly the source's state, no duplicates."""
    things = tmp_path / "things.json"
    truth = write_things(things, 0, 0)
    conf_path = tmp_path / "s.conf"
    conf_path.write_text(
        "[DEFAULT]\nplugins = tests.helpers.plugins:FileCollector\nsinks = message\n"
        f"transport_url = {transport_url}\nmessage_topic = synchronizer_{unique}\n"
        f"rpc_topic = view_{unique}\nnotification_pool = pool-{unique}\n"
        f"[filecollector]\npath = {things}\nperiod = 0.2\n"
    )
    with Daemon(conf_path) as d:
        d.wait_log("complete", timeout=30)
        stop = threading.Event()
        rounds = [0]

        def burst() -> None:
            while not stop.is_set() and rounds[0] < 15:
                rounds[0] += 1
                write_things(things, rounds[0], 50)
                time.sleep(0.15)

        burster = threading.Thread(target=burst)
        burster.start()
        world: dict[str, str] = {}
        seen_seq: set[int] = set()
        dups = []
        synced = threading.Event()

        def on_item(item: Change | Synced) -> None:
            if isinstance(item, Synced):
                synced.set()
                return
            if item.seq and item.seq in seen_seq:
                dups.append(item.seq)
            seen_seq.add(item.seq)
            if item.action == "delete":
                world.pop(item.key, None)
            else:
                world[item.key] = item.entity.state

        consumer_conf = opts.parse(["--config-file", str(conf_path)], setup_logging=False)
        handle = client.watch(consumer_conf, ["test.thing"], on_item, pool=f"consumer-{unique}")
        try:
            assert synced.wait(30)
            burster.join()
            truth = json.loads(things.read_text())
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and world != truth:
                time.sleep(0.2)
        finally:
            stop.set()
            handle.stop()
    missing = set(truth) - set(world)
    wrong = {k for k in truth if k in world and world[k] != truth[k]}
    assert (len(missing), len(wrong), len(dups)) == (0, 0, 0)
    assert len(world) == N


def test_watch_prints_a_change_within_one_period(tmp_path, transport_url, unique):
    """synchronizer-watch prints the view, then a change within one period of it."""
    import subprocess

    from tests.helpers.daemon import REPO, script

    things = tmp_path / "things.json"
    things.write_text(json.dumps({"w1": "up"}))
    conf_path = tmp_path / "s.conf"
    conf_path.write_text(
        "[DEFAULT]\nplugins = tests.helpers.plugins:FileCollector\nsinks = message\n"
        f"transport_url = {transport_url}\nmessage_topic = synchronizer_{unique}\n"
        f"rpc_topic = view_{unique}\nnotification_pool = pool-{unique}\n"
        f"[filecollector]\npath = {things}\nperiod = 1.0\n"
    )
    with Daemon(conf_path) as d:
        d.wait_log("complete", timeout=30)
        watch = subprocess.Popen(
            [
                script("synchronizer-watch"),
                "--config-file",
                str(conf_path),
                "--human",
                "--pool",
                f"consumer-{unique}",
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            assert "snapshot" in watch.stdout.readline()
            assert "synced" in watch.stdout.readline()
            t0 = time.monotonic()
            things.write_text(json.dumps({"w1": "down"}))
            line = watch.stdout.readline()
            elapsed = time.monotonic() - t0
        finally:
            watch.terminate()
            watch.wait(10)
    assert "update" in line
    assert "test.thing/w1 down" in line
    assert elapsed < 1.0 + 1.0  # one period plus delivery
