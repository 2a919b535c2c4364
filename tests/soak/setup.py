"""The soak's fixed parts: secrets, names, the daemon's and the consumers' configs.

Recognisable secrets (:data:`SECRETS`) are configured for Keystone, Nagios
and the fake cloud's token ids, so the run can show that none of them
reaches any output.  Every topic, pool and queue carries the run's id and
is deleted at the end (:func:`queues`).
"""

from __future__ import annotations

from pathlib import Path

from synchronizer_fakecloud.server import FakeCloud
from tests.helpers.cloudconf import SYSTEM_GROUP, service_credentials, system_credentials

TRANSPORT_URL = "rabbit://guest:guest@127.0.0.1:5672/"
PASSWORD = "S3cr3t-soak-pw-XYZ"
NAGIOS_PASSWORD = "N4gios-soak-pw-QRS"
TOKEN_PREFIX = "gAAAAASoakTok"
#: Name → text that must appear in no output.  ``:guest@`` is the broker
#: password as it would appear in a leaked transport URL.
SECRETS = {
    "keystone password": PASSWORD,
    "nagios password": NAGIOS_PASSWORD,
    "token id": "SoakTok",
    "transport URL password": ":guest@",
}
CLIENT_TIMEOUT = 3.0
PERIOD = 1.0
SNAPSHOT_INTERVAL = 5.0
PAGE_SIZE = 5
#: A poll cycle running longer is declared hung: well above the slowest faulted cycle
#: (two requests held past CLIENT_TIMEOUT), well below the soak's length.
CYCLE_TIMEOUT = 10.0
#: A fleet's: above an owner's pause (its lease, the failover, 2 s more), which a
#: cycle in progress sits through without being hung.
FLEET_CYCLE_TIMEOUT = 20.0


class Names:
    """Topics, pools and queues of one run."""

    def __init__(self, run_id: str) -> None:
        self.message_topic = f"soak_{run_id}"
        self.rpc_topic = f"soak_view_{run_id}"
        self.nova_topic = f"soak_versioned_{run_id}"
        self.pool = f"soak-pool-{run_id}"
        self.watch_pool = f"soak-watch-{run_id}"
        self.raise_pool = f"soak-raise-{run_id}"
        self.stall_pool = f"soak-stall-{run_id}"
        self.wire_pool = f"soak-wire-{run_id}"

    def queues(self, hostname: str) -> list[str]:
        """Every durable queue the run may have declared."""
        return [
            self.pool,
            self.watch_pool,
            self.raise_pool,
            self.stall_pool,
            self.wire_pool,
            f"{self.message_topic}.info",
            f"{self.nova_topic}.info",
            self.rpc_topic,
            f"{self.rpc_topic}.{hostname}",
        ]


def _collector_groups(cycle_timeout: float) -> list[str]:
    lines = []
    for name in (
        "nova.instance",
        "nova.host",
        "nova.zone",
        "cinder.volume",
        "neutron.network",
        "neutron.port",
        "ironic.node",
        "heat.stack",
    ):
        lines += [
            f"[{name}]",
            f"period = {PERIOD}",
            "max_backoff = 2",
            f"page_size = {PAGE_SIZE}",
            f"snapshot_interval = {SNAPSHOT_INTERVAL}",
            f"cycle_timeout = {cycle_timeout}",
        ]
        if name == "ironic.node":  # Ironic lists every node only to a system-scoped token
            lines.append(f"credentials = {SYSTEM_GROUP}")
    return lines


def daemon_config(
    cloud: FakeCloud,
    names: Names,
    metrics_port: int,
    options: dict[str, str] | None = None,
    cycle_timeout: float = CYCLE_TIMEOUT,
) -> str:
    """The daemon's config: nine collectors, Nova notifications, the message sink.

    ``options``: more [DEFAULT] options (a setting to soak).
    """
    lines = [
        "[DEFAULT]",
        "plugins = nova.instance, nova.host, nova.zone, cinder.volume, neutron.network, "
        "neutron.port, ironic.node, heat.stack, nagios.service, nova.notifications",
        "sinks = message",
        f"transport_url = {TRANSPORT_URL}",
        f"message_topic = {names.message_topic}",
        f"rpc_topic = {names.rpc_topic}",
        f"notification_pool = {names.pool}",
        f"metrics_port = {metrics_port}",
        "worker_restart_delay = 0.5",
        "worker_restart_max_delay = 2",
        *(f"{name} = {value}" for name, value in (options or {}).items()),
        *service_credentials(cloud, PASSWORD, timeout=CLIENT_TIMEOUT),
        *system_credentials(cloud, PASSWORD, timeout=CLIENT_TIMEOUT),
        *_collector_groups(cycle_timeout),
        "[nagios.service]",
        f"url = {cloud.nagios_url}",
        "username = nagiosadmin",
        f"password = {NAGIOS_PASSWORD}",
        f"period = {PERIOD}",
        "max_backoff = 2",
        f"timeout = {CLIENT_TIMEOUT}",
        f"cycle_timeout = {cycle_timeout}",
        "[nova.notifications]",
        f"topics = {names.nova_topic}",
    ]
    return "\n".join(lines) + "\n"


#: A fleet's partitions (the namespaces of the nine collectors' types).
PARTITIONS = ("cinder", "heat", "ironic", "nagios", "neutron", "nova")
#: [coordination] heartbeat_timeout of a soaked fleet, seconds: the lease a
#: paused owner outlives, and the failover bound's main part.
HEARTBEAT_TIMEOUT = 5


def fleet_queues(names: Names, members: list[str]) -> list[str]:
    """The queues a fleet adds: each partition's notification pool, each member's RPC queue."""
    return [f"{names.pool}-{p}" for p in PARTITIONS] + [
        f"{names.rpc_topic}.fleet-{m}" for m in members
    ]


def member_config(daemon: str, member: str, coordinator: str, database: str) -> str:
    """A fleet member's config: the daemon's, plus ``[coordination]`` and ``[database]``."""
    return (
        daemon
        + "\n".join(
            [
                "[coordination]",
                f"backend_url = {coordinator}",
                f"heartbeat_timeout = {HEARTBEAT_TIMEOUT}",
                f"member_id = {member}",
                "[database]",
                f"connection = {database}",
            ]
        )
        + "\n"
    )


def consumer_config(names: Names) -> str:
    """What an out-of-process consumer needs: the bus and the daemon's topics."""
    return (
        f"[DEFAULT]\ntransport_url = {TRANSPORT_URL}\n"
        f"message_topic = {names.message_topic}\nrpc_topic = {names.rpc_topic}\n"
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path
