"""``synchronizer-watch --config-file F [--type T ...] [--human] [--once]``: follow the stream.

Like ``kubectl get -w``: prints the daemon's current entities (``snapshot``),
then every change as it happens, as JSON lines or, with ``--human``, one
compact line each.  ``--once`` prints the current view and exits (the
daemon's view, without polling the cloud again).  It talks to a running
daemon whose ``message`` sink is on, through
:func:`synchronizer.outputs.client.watch`; Ctrl-C or SIGTERM stops it, and
its ephemeral queue goes with it.  No daemon answering within
``--timeout`` seconds: one line on stderr, exit status 1.
"""

from __future__ import annotations

import signal
import sys
import threading

from oslo_config import cfg

from synchronizer import cmd
from synchronizer.errors import DaemonUnreachable
from synchronizer.model import Action, Change, Synced
from synchronizer.outputs import client

PROG = "synchronizer-watch"

CLI_OPTS = [
    cfg.MultiStrOpt("type", default=[], help="Only this entity type (repeatable)."),
    cfg.BoolOpt("human", default=False, help="Compact human-readable lines."),
    cfg.BoolOpt("once", default=False, help="Print the current view, then exit."),
    cfg.IntOpt("timeout", default=15, min=1, help="Seconds to wait for the daemon to answer."),
    cfg.StrOpt("pool", help="Listener pool (default: an ephemeral one for this process)."),
]


def render(item: Change | Synced, human: bool) -> str:
    if isinstance(item, Synced):
        return f"-- synced: {item.count} entities --" if human else '{"action":"synced"}'
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
    view = client.get_all(conf, conf.type or None, timeout=conf.timeout)
    for entity in view.entities:
        if not _print(render(Change(Action.SNAPSHOT, entity), conf.human)):
            return 0
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
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def show(item: Change | Synced) -> None:
        if not _print(render(item, conf.human)):
            done.set()

    handle = client.watch(conf, conf.type or None, show, pool=conf.pool, timeout=conf.timeout)
    try:
        done.wait()
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
