"""The console scripts, and what they share: one way to read the command line.

Every command parses its arguments and configuration files with
:func:`parse`: ``--version`` and a ``--help`` that says what the command
does; a configuration error (a missing ``--config-file``, an INI syntax
error, a malformed or missing core value) is one line on stderr naming the
file, section, option and value, and exit status 2.  The commands that print
data (:func:`writes_data`) end quietly, with status 0, when the reader of
their standard output goes away (``| head``, a closed pager).
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import sys
from collections.abc import Callable, Sequence

from oslo_config import cfg, iniparser

from synchronizer import clouds, opts
from synchronizer.errors import ConfigError

EXIT_CONFIG = 2


def version() -> str:
    try:
        return importlib.metadata.version("synchronizer")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def parse(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str,
    cli_opts: Sequence[cfg.Opt] = (),
    setup_logging: bool = True,
) -> cfg.ConfigOpts:
    """The parsed configuration, or exit 2 with one line on stderr."""
    conf = cfg.ConfigOpts()
    conf.register_cli_opts(list(cli_opts))
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        opts.register_opts(conf)
        conf(args, project=opts.PROJECT, prog=prog, version=version(), description=description)
        opts.check_group(conf, None, [opt.dest for opt in opts.CORE_OPTS])
        clouds.validate(conf)
    except cfg.ConfigFilesNotFoundError as exc:
        fail(prog, f"configuration error: {_unreadable(exc.config_files)}")
    except (cfg.Error, ConfigError) as exc:
        fail(prog, f"configuration error: {exc}")
    if setup_logging:
        from oslo_log import log

        log.setup(conf, opts.PROJECT)
    return conf


def _unreadable(paths: Sequence[str]) -> str:
    """Why these files could not be read: missing, unreadable, or not INI."""
    reasons = []
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
            cfg.ConfigParser(path, {}).parse(lines)
        except OSError as exc:
            reasons.append(f"{path}: {exc.strerror}")
        except iniparser.ParseError as exc:
            reasons.append(f"{path}: not a valid INI file: {exc.msg} at line {exc.lineno}")
        else:
            reasons.append(f"{path}: cannot be read")
    return "; ".join(reasons)


def stdout_closed() -> None:
    """The reader of stdout left: point it at /dev/null, so no later flush fails.

    Python would otherwise report the lines it still buffered as an
    exception at exit ("Exception ignored ... BrokenPipeError").
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def writes_data(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """A data command's ``main``: a closed standard output ends it quietly (status 0)."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except BrokenPipeError:
            stdout_closed()
            return 0

    return run


def fail(prog: str, message: str, code: int = EXIT_CONFIG) -> None:
    """One line on stderr, then exit with ``code``."""
    print(f"{prog}: {message}", file=sys.stderr)
    raise SystemExit(code)
