"""``synchronizer --config-file F``: run the daemon."""

from __future__ import annotations

import sys

from oslo_config import cfg

from synchronizer import opts


def check_core_options(conf: cfg.ConfigOpts) -> str | None:
    """Why the core options cannot be used (a malformed value), or None."""
    try:
        for opt in opts.CORE_OPTS:
            conf[opt.dest]
    except cfg.ConfigFileValueError as exc:
        return f"[DEFAULT] {exc}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    conf = opts.parse(args)
    problem = check_core_options(conf)
    if problem:
        print(f"synchronizer: configuration error: {problem}", file=sys.stderr)
        return 2
    from synchronizer.service import daemon

    return daemon.run(conf, args)


if __name__ == "__main__":
    sys.exit(main())
