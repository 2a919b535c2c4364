"""``synchronizer-snapshot --config-file F [--type T ...]``: poll once, print.

Runs every configured collector once, in this process, and prints each
entity as a JSON line (``action: snapshot``).  A collector that fails is
reported on stderr and the others still print; the exit status is 1 if any
failed.  A reader that leaves (``| head``) ends it quietly, with status 0.
"""

from __future__ import annotations

import logging
import sys

from oslo_config import cfg

from synchronizer import clouds, cmd, plugin_loader
from synchronizer.model import Change
from synchronizer.plugin_base import CollectorPlugin
from synchronizer.wire import PluginState
from synchronizer.workers import collector

LOG = logging.getLogger(__name__)

CLI_OPTS = [
    cfg.MultiStrOpt("type", default=[], help="Only print entities of this type (repeatable)."),
]


PROG = "synchronizer-snapshot"


@cmd.writes_data
def main(argv: list[str] | None = None) -> int:
    conf = cmd.parse(
        argv,
        prog=PROG,
        cli_opts=CLI_OPTS,
        description="Poll every configured collector once and print its entities as JSON lines.",
    )
    failed: list[str] = []

    def report(name: str, state: PluginState, reason: str) -> None:
        print(f"synchronizer-snapshot: {name}: {state}: {reason}", file=sys.stderr)
        failed.append(name)

    types = set(conf.type)
    collectors = plugin_loader.load(
        conf, _wanted(conf, types, report), CollectorPlugin, report, skip_other_kinds=True
    )
    for name, plugin in collectors.items():
        try:
            _print(collector.snapshot_changes(plugin), types)
        except BrokenPipeError:
            raise  # the reader left: nothing more to print (see cmd.writes_data)
        except Exception as exc:  # noqa: BLE001 - report any plugin failure, run the others
            report(name, PluginState.FAILED, str(exc))
        finally:
            plugin.close()
    return 1 if failed else 0


def _wanted(conf: cfg.ConfigOpts, types: set[str], report: plugin_loader.OnFailure) -> list[str]:
    """The configured plugins that may list one of ``types`` (all of them without types).

    A collector that declares its types and names none of these is not polled.
    """
    if not types:
        return clouds.plugin_names(conf)
    names = clouds.plugin_names(conf)
    classes = plugin_loader.load(
        conf, names, CollectorPlugin, report, invoke=False, skip_other_kinds=True
    )
    return [n for n, c in classes.items() if not c.entity_types or types & set(c.entity_types)]


def _print(changes: list[Change], types: set[str]) -> None:
    out = sys.stdout.buffer
    for change in changes:
        if not types or change.entity.type in types:
            out.write(change.to_json() + b"\n")
    out.flush()


if __name__ == "__main__":
    sys.exit(main())
