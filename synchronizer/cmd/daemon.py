"""``synchronizer --config-file F``: run the daemon."""

from __future__ import annotations

import sys

from synchronizer import opts


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    conf = opts.parse(args)
    from synchronizer import service

    return service.run(conf, args)


if __name__ == "__main__":
    sys.exit(main())
