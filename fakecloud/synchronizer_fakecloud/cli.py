"""Command line: ``synchronizer-fakecloud`` / ``python -m synchronizer_fakecloud``.

Starts the fake cloud in the foreground, optionally populated, prints where
it listens (never a secret) and serves until SIGINT or SIGTERM::

    python -m synchronizer_fakecloud --port 8999 --servers 100000 --hosts 1000
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Sequence
from types import FrameType

from synchronizer_fakecloud.keystone import Credentials
from synchronizer_fakecloud.server import FakeCloud

LOG = logging.getLogger(__name__)
_COUNTS = (
    "servers",
    "hosts",
    "projects",
    "zones",
    "volumes",
    "networks",
    "ports",
    "nodes",
    "stacks",
    "nagios_services",
)


def build_parser() -> argparse.ArgumentParser:
    """The command line parser."""
    parser = argparse.ArgumentParser(
        prog="synchronizer-fakecloud",
        description="Serve a fake OpenStack cloud (and Nagios) on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8999, help="port (0: any free port)")
    for name in _COUNTS:
        flag, label = name.replace("_", "-"), name.replace("_", " ")
        parser.add_argument(
            f"--{flag}", type=int, default=None, help=f"number of {label} to populate"
        )
    parser.add_argument("--seed", type=int, default=0, help="seed of generated data")
    parser.add_argument("--token-ttl", type=float, default=3600.0, help="token lifetime (s)")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--project", default="admin")
    parser.add_argument("--nagios-user", default="nagiosadmin")
    parser.add_argument("--nagios-password", default="nagios")
    parser.add_argument("--debug", action="store_true", help="log every request")
    return parser


def _cloud(args: argparse.Namespace) -> FakeCloud:
    creds = Credentials(username=args.username, password=args.password, project_name=args.project)
    return FakeCloud(
        args.host,
        args.port,
        credentials=creds,
        token_ttl=args.token_ttl,
        nagios_user=args.nagios_user,
        nagios_password=args.nagios_password,
        seed=args.seed,
    )


def _populate(cloud: FakeCloud, args: argparse.Namespace) -> None:
    counts = {name: getattr(args, name) for name in _COUNTS if getattr(args, name) is not None}
    if not counts:
        return
    started = time.monotonic()
    created = cloud.populate(**counts)
    LOG.info("Populated %s in %.2fs", created, time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the fake cloud until interrupted; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    cloud = _cloud(args)
    _populate(cloud, args)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    with cloud:
        LOG.info(
            "Keystone auth_url %s (user %s, project %s, domain %s)",
            cloud.auth_url,
            cloud.credentials.username,
            cloud.credentials.project_name,
            cloud.credentials.domain_id,
        )
        LOG.info("Nagios %s, control API %s", cloud.nagios_url, cloud.control_url)
        stop.wait()
    return 0
