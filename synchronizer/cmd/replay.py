"""``synchronizer-replay --config-file F FILE...``: notifications through the plugins.

Each FILE holds one notification as JSON (``priority``, ``event_type``,
``publisher_id``, ``payload``, optional ``timestamp`` and ``message_id``),
or a JSON list of them.  They go through the configured notification
plugins exactly as on the bus (same validation, same counters) and the
resulting changes are printed as JSON lines; no broker is needed and
collectors are not started.  A summary goes to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
from oslo_config import cfg

from synchronizer import loader, opts
from synchronizer.exceptions import PluginLoadError, PluginUnavailable
from synchronizer.notifications import Converter
from synchronizer.plugin import NotificationPlugin

CLI_OPTS = [cfg.MultiStrOpt("files", positional=True, default=[], help="Notification files.")]


def main(argv: list[str] | None = None) -> int:
    conf = cfg.ConfigOpts()
    conf.register_cli_opts(CLI_OPTS)
    opts.register_opts(conf)
    conf(list(sys.argv[1:] if argv is None else argv), project=opts.PROJECT)
    plugins = _plugins(conf)
    if not plugins:
        print("synchronizer-replay: no notification plugin configured", file=sys.stderr)
        return 2
    converter = Converter(plugins, conf.notification_max_bytes)
    out = sys.stdout.buffer
    unreadable = 0
    for path in conf.files:
        try:
            items = _read(Path(path))
        except (OSError, orjson.JSONDecodeError) as exc:
            print(f"synchronizer-replay: {path}: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        for raw in items:
            for change in converter.convert(raw):
                out.write(change.to_json() + b"\n")
    out.flush()
    summary = dict(converter.counts)
    print(f"synchronizer-replay: {summary} unreadable={unreadable}", file=sys.stderr)
    return 1 if unreadable else 0


def _plugins(conf: cfg.ConfigOpts) -> list[NotificationPlugin]:
    plugins = []
    for name in conf.plugins:
        try:
            cls, _ = loader.resolve(conf, name)
            if issubclass(cls, NotificationPlugin):
                plugins.append(loader.instantiate(conf, name))
        except (PluginLoadError, PluginUnavailable) as exc:
            print(f"synchronizer-replay: {exc}", file=sys.stderr)
    return plugins  # type: ignore[return-value]


def _read(path: Path) -> list[Any]:
    data = orjson.loads(path.read_bytes())
    return data if isinstance(data, list) else [data]


if __name__ == "__main__":
    sys.exit(main())
