"""``synchronizer-snapshot --config-file F [--type T ...]``: poll once, print.

Runs every configured collector once, in this process, and prints each
entity as a JSON line (``action: snapshot``).  A collector that fails is
reported on stderr and the others still print; the exit status is 1 if any
failed.
"""

from __future__ import annotations

import logging
import sys

from oslo_config import cfg

from synchronizer import opts, plugin_loader
from synchronizer.plugin_base import CollectorPlugin
from synchronizer.workers import collector

LOG = logging.getLogger(__name__)

CLI_OPTS = [
    cfg.MultiStrOpt("type", default=[], help="Only print entities of this type (repeatable)."),
]


def main(argv: list[str] | None = None) -> int:
    conf = cfg.ConfigOpts()
    conf.register_cli_opts(CLI_OPTS)
    opts.register_opts(conf)
    conf(list(sys.argv[1:] if argv is None else argv), project=opts.PROJECT)
    from oslo_log import log

    log.setup(conf, opts.PROJECT)
    failed = 0
    for name in conf.plugins:
        failed += _snapshot_one(conf, name, set(conf.type))
    return 1 if failed else 0


def _snapshot_one(conf: cfg.ConfigOpts, name: str, types: set[str]) -> int:
    try:
        cls, _ = plugin_loader.resolve(conf, name)
        if not issubclass(cls, CollectorPlugin):
            return 0
        plugin = plugin_loader.instantiate(conf, name)
        changes = collector.snapshot_changes(plugin)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001 - report any plugin failure, run the others
        print(f"synchronizer-snapshot: {name}: {exc}", file=sys.stderr)
        return 1
    out = sys.stdout.buffer
    for change in changes:
        if not types or change.entity.type in types:
            out.write(change.to_json() + b"\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
