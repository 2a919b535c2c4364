"""The synchronizer as a library, with the static collector in a worker process."""

from __future__ import annotations

import queue
import shutil
from pathlib import Path

import pytest

from synchronizer import Synchronizer, opts
from synchronizer.model import Change, Synced
from tests.helpers.daemon import REPO


def make(tmp_path: Path, ledger_file: Path | None = None) -> Synchronizer:
    shutil.copytree(REPO / "etc" / "synchronizer" / "static", tmp_path / "static")
    conf_path = tmp_path / "s.conf"
    # ledger_file is the per-run store's option: it goes with state = memory.
    ledger = f"state = memory\nledger_file = {ledger_file}\n" if ledger_file else ""
    conf_path.write_text(
        f"[DEFAULT]\nplugins = static\nsinks =\n{ledger}"
        "[static]\ndirectory = static\nperiod = 0.3\n"
    )
    conf = opts.parse(["--config-file", str(conf_path)], setup_logging=False)
    return Synchronizer(conf)


@pytest.mark.parametrize("ledger", ["memory", "file"])
def test_subscribe_queue_gets_snapshot_synced_then_live(tmp_path, ledger):
    """A queue subscriber added after start gets the view, the marker, then changes
    (the ledger in memory, or in a ledger file)."""
    ledger_file = tmp_path / "ledger.db" if ledger == "file" else None
    if ledger_file is not None:
        ledger_file.write_bytes(b"left over from another run")  # emptied at start
    sync = make(tmp_path, ledger_file)
    sync.start()
    try:
        assert sync.wait_ready(20)
        q: queue.Queue = queue.Queue()
        sync.subscribe(["nova.host"], q)
        first = [q.get(timeout=5) for _ in range(3)]
        assert [type(i) for i in first] == [Change, Change, Synced]
        assert {c.key for c in first[:2]} == {"compute-1", "compute-2"}
        hosts = tmp_path / "static" / "hosts.yaml"
        hosts.write_text(hosts.read_text().replace("state: up\n", "state: down\n", 1))
        live = q.get(timeout=10)
        assert (live.action, live.key, live.entity.state) == ("update", "compute-1", "down")
        assert {e.key for e in sync.get_all(["nova.host"])} == {"compute-1", "compute-2"}
        assert len(sync.get_all()) == 6
        if ledger_file is not None:
            assert ledger_file.stat().st_size > 0
            assert sync.dispatcher.ledger._db is not None
    finally:
        sync.stop()
