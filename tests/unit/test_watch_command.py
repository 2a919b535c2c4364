"""synchronizer-watch's own parts: what it prints for each item, and its position file."""

from __future__ import annotations

import json
import os
import threading

import pytest

from synchronizer.cmd import watch
from synchronizer.model import Action, Change, Entity, Synced
from synchronizer.outputs.client import Relist


def test_every_item_a_watcher_gets_renders_as_one_json_line():
    """Changes, Synced and Relist markers: one JSON object each, ``action`` first to switch on."""
    change = Change(Action.UPDATE, Entity("test.thing", "w1", state="up"), seq=7)
    lines = [
        watch.render(item, human=False)
        for item in (change, Synced(("test.thing",), 2), Relist("the daemon's state changed"))
    ]
    decoded = [json.loads(line) for line in lines]
    assert [d["action"] for d in decoded] == ["update", "synced", "relist"]
    assert decoded[0]["seq"] == 7
    assert decoded[2]["reason"] == "the daemon's state changed"
    assert all("\n" not in line for line in lines)
    assert watch.render(Relist("why"), human=True) == "-- relist: why --"


@pytest.mark.parametrize(
    "position", [("4f1c0a9e2b7d4c11", 41), {"4f1c0a9e2b7d4c11": 41, "9a0b1c2d3e4f5a6b": 7}]
)
def test_a_saved_position_reads_back_as_the_same_position(tmp_path, position):
    """A daemon's (epoch, seq) and a fleet's {epoch: seq} survive a save and a read."""
    path = str(tmp_path / "watch.position")
    assert watch.read_position(path) is None  # no file yet: start from the view
    assert watch._save(path, position, None, threading.Event()) == position
    assert watch.read_position(path) == position
    assert os.listdir(tmp_path) == ["watch.position"]  # no temporary left


def test_the_position_is_not_saved_once_stdout_is_closed(tmp_path):
    """After a failed print the position counts a line nobody read: the file keeps the last."""
    path = str(tmp_path / "watch.position")
    watch._save(path, ("e", 5), None, threading.Event())
    broken = threading.Event()
    broken.set()
    assert watch._save(path, ("e", 9), ("e", 5), broken) == ("e", 5)
    assert watch.read_position(path) == ("e", 5)


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[1, 2]", b'{"epoch": "e"}', b'{"epoch": "e", "seq": -1}', b'{"seq": "x"}'],
)
def test_a_file_that_holds_no_position_is_refused_with_one_line(tmp_path, capsys, content):
    """Exit 2 naming the file; the file is left as it was (it may be someone else's)."""
    path = tmp_path / "watch.position"
    path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_:
        watch.read_position(str(path))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"--position-file {path}" in err
    assert path.read_bytes() == content


def test_a_position_file_in_a_missing_directory_is_refused_at_start(tmp_path, capsys):
    """Found at start, not at the first save a second later."""
    with pytest.raises(SystemExit) as exit_:
        watch.read_position(str(tmp_path / "nowhere" / "watch.position"))
    assert exit_.value.code == 2
    assert "its directory does not exist" in capsys.readouterr().err


def test_a_position_that_cannot_be_saved_is_said_and_the_last_one_kept(tmp_path, capsys):
    """The watcher goes on printing; the next save tries again from the last saved position."""
    (tmp_path / "a-file").write_text("")
    path = str(tmp_path / "a-file" / "watch.position")  # its directory is a file
    assert watch._save(path, ("e", 9), ("e", 5), threading.Event()) == ("e", 5)
    assert "could not save the position in" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["a-file"]
