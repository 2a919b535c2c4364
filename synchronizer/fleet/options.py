"""The fleet's options: ``[coordination]`` (tooz) and ``[database]`` (oslo.db)."""

from __future__ import annotations

from oslo_config import cfg

COORDINATION_OPTS = [
    cfg.StrOpt(
        "backend_url",
        secret=True,
        help="tooz backend URL (redis://host:6379, zookeeper://host:2181, ...). "
        "Unset: the daemon is a single node and ignores the rest of this group.",
    ),
    cfg.IntOpt(
        "heartbeat_timeout",
        default=10,
        min=1,
        help="Seconds after which a silent member loses its membership and its "
        "partitions' locks; members heart-beat three times per timeout.",
    ),
    cfg.StrOpt(
        "group",
        default="synchronizer",
        help="tooz group the members join (one per fleet).",
    ),
    cfg.StrOpt(
        "member_id",
        help="This member's id in the group; default: host name and process id.",
    ),
]


def register(conf: cfg.ConfigOpts) -> None:
    """Register ``[coordination]`` and oslo.db's ``[database]`` (idempotent)."""
    from oslo_db import options as db_options

    conf.register_opts(COORDINATION_OPTS, group="coordination")
    db_options.set_defaults(conf)


def enabled(conf: cfg.ConfigOpts) -> bool:
    """Whether this daemon is a fleet member (``[coordination] backend_url`` is set)."""
    register(conf)
    return bool(conf.coordination.backend_url)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [("coordination", list(COORDINATION_OPTS))]
