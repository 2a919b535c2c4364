"""The fleet's options: ``[coordination]`` (tooz) and ``[database]`` (oslo.db)."""

from __future__ import annotations

from oslo_config import cfg

from synchronizer.errors import ConfigError

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
    cfg.BoolOpt(
        "standby_workers",
        default=True,
        help="Keep the workers of the partitions this member does not own started "
        "and idle (interpreter and plugins loaded; no polling, nothing taken from "
        "the bus), so that taking a partition over does not wait for them. Costs "
        "one idle process per worker of each partition held elsewhere.",
    ),
    cfg.StrOpt(
        "member_id",
        help="This member's id in the group; default: host name and process id.",
    ),
]


def register(conf: cfg.ConfigOpts) -> None:
    """Register ``[coordination]`` and oslo.db's ``[database]`` (idempotent).

    Raises :class:`ConfigError` naming the extra to install when the
    fleet's libraries (tooz, oslo.db) are missing: they are the
    ``synchronizer[fleet]`` extra, not needed by a single node.
    """
    conf.register_opts(COORDINATION_OPTS, group="coordination")
    try:
        from oslo_db import options as db_options
    except ImportError as exc:
        raise ConfigError(
            "[coordination] backend_url is set but the fleet's libraries are not "
            f"installed ({exc.name}): pip install 'synchronizer[fleet]'"
        ) from None
    db_options.set_defaults(conf)


def enabled(conf: cfg.ConfigOpts) -> bool:
    """Whether this daemon is a fleet member (``[coordination] backend_url`` is set).

    A single node (no ``backend_url``) imports nothing of the fleet's
    libraries, which it may not have.
    """
    conf.register_opts(COORDINATION_OPTS, group="coordination")
    if not conf.coordination.backend_url:
        return False
    register(conf)
    return True


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [("coordination", list(COORDINATION_OPTS))]
