"""``synchronizer --config-file F``: run the daemon."""

from __future__ import annotations

import sys

from synchronizer import cmd

DESCRIPTION = (
    "The polling synchronizer: keeps an always-current view of an OpenStack cloud "
    "(and of monitors such as Nagios) and streams only what changed to subscribers "
    "and sinks. SIGTERM stops it, SIGHUP reloads the plugin list and periods."
)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    conf = cmd.parse(args, prog="synchronizer", description=DESCRIPTION)
    from synchronizer.service import daemon

    return daemon.run(conf, args)


if __name__ == "__main__":
    sys.exit(main())
