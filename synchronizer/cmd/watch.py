"""``synchronizer-watch --config-file F [--type T ...] [--human]``: follow the stream.

Like ``kubectl get -w``: prints the daemon's current entities (``snapshot``),
then every change as it happens, as JSON lines or, with ``--human``, one
compact line each.  It talks to a running daemon whose ``message`` sink is
on, through :func:`synchronizer.outputs.client.watch`; Ctrl-C stops it.
"""

from __future__ import annotations

import signal
import sys
import threading

from oslo_config import cfg

from synchronizer import opts
from synchronizer.model import Change, Synced
from synchronizer.outputs import client

CLI_OPTS = [
    cfg.MultiStrOpt("type", default=[], help="Only this entity type (repeatable)."),
    cfg.BoolOpt("human", default=False, help="Compact human-readable lines."),
    cfg.StrOpt("pool", help="Listener pool (default: one per watch process)."),
]


def render(item: Change | Synced, human: bool) -> str:
    if isinstance(item, Synced):
        return f"-- synced: {item.count} entities --" if human else '{"action":"synced"}'
    if not human:
        return item.to_json().decode()
    e = item.entity
    parent = f" on {e.parent.type}/{e.parent.key}" if e.parent else ""
    return f"{e.timestamp} {item.action:<8} {e.type}/{e.key} {e.state}{parent}"


def main(argv: list[str] | None = None) -> int:
    conf = cfg.ConfigOpts()
    conf.register_cli_opts(CLI_OPTS)
    opts.register_opts(conf)
    conf(list(sys.argv[1:] if argv is None else argv), project=opts.PROJECT)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def show(item: Change | Synced) -> None:
        print(render(item, conf.human), flush=True)

    handle = client.watch(conf, conf.type or None, show, pool=conf.pool)
    done.wait()
    handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
