"""synchronizer-snapshot and synchronizer-replay as a user runs them."""

from __future__ import annotations

import json
import subprocess

from tests.helpers.daemon import REPO, script

CONF = REPO / "etc" / "synchronizer" / "synchronizer.conf"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*args], capture_output=True, text=True, check=False, cwd=REPO, timeout=60
    )


def test_snapshot_prints_every_static_entity():
    """synchronizer-snapshot prints the embedded default's entities as JSON lines."""
    out = run(script("synchronizer-snapshot"), "--config-file", str(CONF))
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 6
    assert {r["action"] for r in records} == {"snapshot"}


def test_snapshot_filters_by_type():
    """--type keeps only the entities of that type."""
    out = run(script("synchronizer-snapshot"), "--config-file", str(CONF), "--type", "nova.host")
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["key"] for r in records] == ["compute-1", "compute-2"]


def test_replay_runs_files_through_notification_plugins(tmp_path):
    """synchronizer-replay prints the changes of good files and reports bad ones."""
    conf = tmp_path / "replay.conf"
    conf.write_text("[DEFAULT]\nplugins = tests.helpers.plugins:ThingNotifications\n")
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            {
                "priority": "INFO",
                "event_type": "test.thing.update",
                "publisher_id": "svc.h1",
                "payload": {"key": "a", "state": "up"},
                "timestamp": "2016-08-19 10:20:59.279903",
            }
        )
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    env_cmd = ["env", f"PYTHONPATH={REPO}", script("synchronizer-replay")]
    out = run(*env_cmd, "--config-file", str(conf), str(good), str(bad))
    (record,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert record["key"] == "a"
    assert record["timestamp"] == "2016-08-19T10:20:59.279903Z"
    assert "bad.json" in out.stderr
    assert out.returncode == 1
