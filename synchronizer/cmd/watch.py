"""``synchronizer-watch --config-file F [--type T ...] [--human] [--once] [--position-file P]``.

Like ``kubectl get -w``: prints the daemon's current entities (``snapshot``),
then every change as it happens, as JSON lines or, with ``--human``, one
compact line each.  ``--once`` prints the current view and exits (the
daemon's view, without polling the cloud again).  It talks to a running
daemon whose ``message`` sink is on, through
:func:`synchronizer.outputs.client.watch`; Ctrl-C or SIGTERM stops it, and
its ephemeral queue goes with it.  No daemon answering within
``--timeout`` seconds: one line on stderr, exit status 1.

When the watcher has to relist (the daemon came back with another epoch,
or the stream lost changes its history no longer holds) it prints a
``relist`` line with the reason, then the view again and ``synced``.

``--position-file P`` keeps the watcher's position (``epoch`` and ``seq``:
every change up to ``seq`` was printed) in ``P``, saved at most a second
apart and when it stops (with ``--once``, the view's), so that the next
run resumes where this one ended: it prints only the changes made
meanwhile (from the daemon's history), with no view, or relists as above
when the position is outside the history.  Changes printed after the
last save may be printed again (same ``seq``, same content).  A file that
holds no position is refused (exit 2); it is only ever replaced whole.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
from typing import Any

import orjson
from oslo_config import cfg

from synchronizer import cmd
from synchronizer.errors import DaemonUnreachable
from synchronizer.model import Action, Change, Synced
from synchronizer.outputs import client
from synchronizer.outputs.client import Relist

PROG = "synchronizer-watch"

CLI_OPTS = [
    cfg.MultiStrOpt("type", default=[], help="Only this entity type (repeatable)."),
    cfg.BoolOpt("human", default=False, help="Compact human-readable lines."),
    cfg.BoolOpt("once", default=False, help="Print the current view, then exit."),
    cfg.IntOpt("timeout", default=15, min=1, help="Seconds to wait for the daemon to answer."),
    cfg.StrOpt("pool", help="Listener pool (default: an ephemeral one for this process)."),
    cfg.StrOpt(
        "position-file",
        help="Keep the position in this file and resume from it on the next run.",
    ),
]
SAVE_EVERY = 1.0  # seconds between two saves of the position file


def render(item: Change | Synced | Relist, human: bool) -> str:
    if isinstance(item, Synced):
        return f"-- synced: {item.count} entities --" if human else '{"action":"synced"}'
    if isinstance(item, Relist):
        if human:
            return f"-- relist: {item.reason} --"
        return orjson.dumps({"action": item.action, "reason": item.reason}).decode()
    if not human:
        return item.to_json().decode()
    e = item.entity
    parent = f" on {e.parent.type}/{e.parent.key}" if e.parent else ""
    return f"{e.timestamp} {item.action:<8} {e.type}/{e.key} {e.state}{parent}"


def _print(line: str) -> bool:
    """Print one line; False once the reader has closed standard output."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        cmd.stdout_closed()
        return False
    return True


def _once(conf: cfg.ConfigOpts) -> int:
    path = conf.position_file
    if path:
        read_position(path)  # refused now, before the view, if it is not a position file
    view = client.get_all(conf, conf.type or None, timeout=conf.timeout)
    for entity in view.entities:
        if not _print(render(Change(Action.SNAPSHOT, entity), conf.human)):
            return 0
    if path and view.epoch:  # the view covers every change up to its seq: follow from there
        _save(path, (view.epoch, view.seq), None, threading.Event())
    elif path:
        print(
            f"{PROG}: a fleet's whole view has no one position; {path} is left as it was",
            file=sys.stderr,
        )
    return 0


@cmd.writes_data
def main(argv: list[str] | None = None) -> int:
    conf = cmd.parse(
        argv,
        prog=PROG,
        cli_opts=CLI_OPTS,
        description="Print a running synchronizer daemon's view, then follow its changes.",
    )
    try:
        if conf.once:
            return _once(conf)
        return _follow(conf)
    except DaemonUnreachable as exc:
        cmd.fail(PROG, str(exc), code=1)
    return 1


def _follow(conf: cfg.ConfigOpts) -> int:
    path = conf.position_file
    since = read_position(path) if path else None
    done = threading.Event()
    broken = threading.Event()  # stdout closed: what was last printed may not have been read
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def show(item: Change | Synced | Relist) -> None:
        if broken.is_set():
            return
        if not _print(render(item, conf.human)):
            broken.set()
            done.set()

    handle = client.watch(
        conf, conf.type or None, show, pool=conf.pool, since=since, timeout=conf.timeout
    )
    try:
        saved = since
        # The gate calls show() under its lock, so a position read is one whose
        # changes were all printed.
        while not done.wait(SAVE_EVERY if path else None):
            saved = _save(path, handle.position, saved, broken)
    finally:
        handle.stop()
        if path:
            _save(path, handle.position, saved, broken)
    return 0


def read_position(path: str) -> tuple[str, int] | dict[str, int] | None:
    """The position saved in ``path`` (None when there is no file yet); exit 2 if unreadable.

    ``{"epoch": E, "seq": N}`` for a daemon, ``{"partitions": {E: N, ...}}``
    for a fleet (a position per partition's epoch).
    """
    try:
        with open(path, "rb") as f:
            data = orjson.loads(f.read())
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            cmd.fail(PROG, f"--position-file {path}: its directory does not exist")
        return None
    except (OSError, orjson.JSONDecodeError) as exc:
        cmd.fail(PROG, f"--position-file {path} cannot be read ({exc}); remove it to relist")
    try:
        if isinstance(data, dict) and "partitions" in data:
            positions = data["partitions"]
            if not isinstance(positions, dict):
                raise TypeError("partitions is not an object")
            return {str(e): _seq(n) for e, n in positions.items()}
        if not isinstance(data, dict):
            raise TypeError("not an object")
        return str(data["epoch"]), _seq(data["seq"])
    except KeyError as exc:
        cmd.fail(PROG, f"--position-file {path} holds no position (no {exc}); remove it to relist")
    except (TypeError, ValueError) as exc:
        cmd.fail(PROG, f"--position-file {path} holds no position ({exc}); remove it to relist")
    return None  # not reached: fail() exits


def _seq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"seq {value!r} is not a sequence number")
    return value


def _save(path: str | None, position: Any, saved: Any, broken: threading.Event) -> Any:
    """Write ``position`` to ``path`` (whole: a new file renamed over the old) if it moved.

    Not once stdout is closed: the position would count lines nobody read.
    """
    if not path or position is None or position == saved or broken.is_set():
        return saved
    if isinstance(position, dict):
        data: dict[str, Any] = {"partitions": position}
    else:
        data = {"epoch": position[0], "seq": position[1]}
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".position-")
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(data) + b"\n")
            f.flush()
            os.fsync(f.fileno())  # a crash leaves the old file or the new one, never an empty one
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        print(f"{PROG}: could not save the position in {path}: {exc}", file=sys.stderr)
        return saved
    return position


if __name__ == "__main__":
    sys.exit(main())
