"""``synchronizer-show --config-file F TYPE KEY``: one entity, as the daemon sees it.

Asks the running daemon (its ``message`` sink on) for the current state
of one entity and prints it as one JSON object; exit status 1 when the
daemon has no such entity or does not answer.  Nothing polls the cloud.
"""

from __future__ import annotations

import sys

import orjson
from oslo_config import cfg

from synchronizer import cmd
from synchronizer.errors import DaemonUnreachable
from synchronizer.outputs import client

PROG = "synchronizer-show"

CLI_OPTS = [
    cfg.StrOpt("entity_type", positional=True, required=True, help="Entity type."),
    cfg.StrOpt("key", positional=True, required=True, help="Entity key."),
    cfg.IntOpt("timeout", default=15, min=1, help="Seconds to wait for the daemon to answer."),
]


@cmd.writes_data
def main(argv: list[str] | None = None) -> int:
    conf = cmd.parse(
        argv,
        prog=PROG,
        cli_opts=CLI_OPTS,
        description="Print one entity of a running synchronizer daemon's view as JSON.",
    )
    try:
        view = client.get_all(conf, [conf.entity_type], timeout=conf.timeout)
    except DaemonUnreachable as exc:
        cmd.fail(PROG, str(exc), code=1)
    for entity in view.entities:
        if entity.key == conf.key:
            sys.stdout.buffer.write(orjson.dumps(entity.to_dict()) + b"\n")
            return 0
    cmd.fail(PROG, f"the daemon's view has no {conf.entity_type} {conf.key!r}", code=1)
    return 1


if __name__ == "__main__":
    sys.exit(main())
