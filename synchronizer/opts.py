"""Configuration options of the core, and the config generator's entry point.

Plugins add their own options, each plugin in a group named after it;
groups shared by several plugins (the OpenStack collectors'
``[service_credentials]``) are registered by the plugins themselves.
"""

from __future__ import annotations

import configparser
import logging
import re
from collections.abc import Iterable, Sequence

from oslo_config import cfg
from oslo_log import log

from synchronizer import backend
from synchronizer.errors import ConfigError

LOG = logging.getLogger(__name__)

PROJECT = "synchronizer"

CORE_OPTS = [
    cfg.ListOpt(
        "plugins",
        default=[],
        help="Plugins to run: entry-point names in the 'synchronizer.plugins' "
        "namespace (e.g. nova.instance, nova.notifications, static) or class "
        "paths (package.module:Class). Each plugin's options are in a group "
        "named after it.",
    ),
    cfg.ListOpt(
        "clouds",
        default=[],
        help="Clouds to keep the view of, each with a section [cloud:<name>] (its "
        "credentials group, region_name, plugins and transport_url). Their entities "
        "carry 'cloud' and keys namespaced by it (east/<id>); each cloud's plugins run "
        "as <cloud>/<plugin>. Empty (the default): one cloud, configured by plugins "
        "and [service_credentials], whose entities have no cloud and keep their keys. "
        "Both can be combined: plugins then holds what belongs to no cloud.",
    ),
    cfg.ListOpt(
        "sinks",
        default=["log"],
        help="Where every change goes besides registered subscribers: log, jsonl, message.",
    ),
    cfg.StrOpt(
        "jsonl_path",
        default="-",
        help="File the 'jsonl' sink appends JSON lines to ('-' is standard output).",
    ),
    cfg.StrOpt(
        "message_topic",
        default="synchronizer",
        help="Notification topic the 'message' sink publishes changes on.",
    ),
    cfg.StrOpt(
        "rpc_topic",
        default="synchronizer_view",
        help="RPC topic on which the daemon answers get_all (when the message sink is on).",
    ),
    cfg.StrOpt(
        "notification_pool",
        default="synchronizer",
        help="Listener pool (queue name suffix) of the notification worker, so it "
        "does not steal messages from other consumers of the same topics.",
    ),
    cfg.IntOpt(
        "notification_max_bytes",
        default=1024 * 1024,
        min=1024,
        help="Notifications whose payload is larger than this are dropped and counted.",
    ),
    cfg.IntOpt(
        "notification_workers",
        default=1,
        min=1,
        max=64,
        help="Notification worker processes.  Each runs its own oslo.messaging "
        "listener in the same pool, so the broker shares the pool's queues between "
        "them (as ceilometer's notification agent scales with its workers).  One "
        "worker is bound by one core (the AMQP consumer costs more than the "
        "conversion); add workers on a machine with cores to spare when notifications "
        "arrive faster than one drains them.  With more than one, changes of an "
        "entity may reach the dispatcher out of bus order: the ledger's timestamp "
        "rule settles that (an older state is dropped, never delivered after a newer).",
    ),
    cfg.IntOpt(
        "notification_executor_threads",
        default=16,
        min=1,
        help="Threads of the notification listener's executor: calls (batches, or "
        "messages with notification_batch_size = 1) handled at once.  A notification is "
        "acknowledged to the bus only once the main process has committed its changes, "
        "so each thread waits that round trip (a millisecond or two) after converting "
        "its call's messages; meanwhile the other threads convert the next ones, and "
        "their changes cross together.  With 1, calls are handled one at a time in bus "
        "order, one round trip each.  With more, "
        "changes of an entity may reach the dispatcher out of bus order: the ledger's "
        "timestamp rule settles that (an older state is dropped, never delivered after "
        "a newer).  Converting is CPU work under the interpreter lock: many more "
        "threads than the messages in flight only add contention.",
    ),
    cfg.IntOpt(
        "notification_batch_size",
        default=100,
        min=1,
        help="Most notifications the notification worker takes from the bus at once "
        "(oslo.messaging's batch listener; 1: the plain listener, one message a call).  "
        "A notification is acknowledged only once its changes are committed, so each "
        "call waits that round trip: a batch waits it once for all its messages, where "
        "one message a call wakes an executor thread and waits a round trip per message "
        "(on 2 cores at 1,000 a second that saturates the worker: p50 latency 24-160 ms "
        "against 5.5 ms batched).  The batch listener waits up to "
        "notification_batch_timeout for a batch to fill, which is what it adds to a lone "
        "notification's latency.",
    ),
    cfg.FloatOpt(
        "notification_batch_timeout",
        default=0.005,
        min=0.001,
        help="With notification_batch_size > 1: seconds the batch listener waits for a "
        "batch to fill before it handles what it has.  It is what batching adds to a "
        "notification's latency, and how often the idle listener polls the bus "
        "(oslo.messaging polls at that period when the bus is quiet): 0.005 costs about "
        "5% of a core while idle on a 2-core guest, 0.002 about 9% (at most 2 ms added), "
        "0.01 about 3.5% (at most 10 ms added).",
    ),
    cfg.IntOpt(
        "chunk_size",
        default=1000,
        min=1,
        help="Changes per chunk sent from a worker process to the dispatcher.",
    ),
    cfg.FloatOpt(
        "worker_restart_delay",
        default=1.0,
        min=0.0,
        help="First delay before a dead worker is restarted (doubles up to the maximum).",
    ),
    cfg.FloatOpt(
        "worker_restart_max_delay",
        default=60.0,
        min=0.0,
        help="Longest delay before a dead worker is restarted.",
    ),
    cfg.PortOpt(
        "metrics_port",
        default=0,
        help="Port of the Prometheus /metrics and /healthz endpoint (0: disabled).",
    ),
    cfg.HostAddressOpt(
        "metrics_host",
        default="127.0.0.1",
        help="Address the metrics endpoint binds to (loopback unless you say otherwise).",
    ),
    cfg.FloatOpt(
        "tombstone_ttl",
        default=3600.0,
        min=0.0,
        help="Seconds a delete is remembered, during which a poll still listing the "
        "deleted entity (a stale read) cannot resurrect it.",
    ),
    cfg.IntOpt(
        "tombstone_max",
        default=100000,
        min=0,
        help="Most deletes remembered at once (see tombstone_ttl).  Past it the oldest "
        "is forgotten before its time, so create/delete churn cannot grow the ledger "
        "(each takes about 400 bytes: 40 MB at the default).  Raise it for a cloud "
        "that deletes more entities than this per tombstone_ttl.",
    ),
    cfg.StrOpt(
        "ledger_file",
        help="Keep the ledger (what subscribers were last told of each entity: "
        "fingerprint, time, last state) in this SQLite file instead of in memory; "
        "it is emptied at start.  For clouds of millions of entities: the daemon's "
        "memory then stays flat instead of growing by about 300 bytes per entity, "
        "for a few microseconds more per change and per entity of a new "
        "subscriber's snapshot, and about 200 bytes of disk per entity.  Unset (the "
        "default): in memory.  Only with state = memory (the durable store is a file "
        "already).",
    ),
    cfg.StrOpt(
        "state",
        default="sqlite",
        choices=[
            ("sqlite", "a SQLite file at state_path that outlives the daemon"),
            ("memory", "the heap, for one run (a restart re-sends everything)"),
        ],
        help="Where the dispatcher keeps its state: the ledger (what subscribers were "
        "last told of each entity, which is the view get_all serves), the stream's "
        "sequence number and epoch, the history of recent changes and the sinks' "
        "positions.  With sqlite a restarted daemon resumes: its first listing sends "
        "only what changed while it was down, seq never goes back, and watchers resume "
        "from their saved position.",
    ),
    cfg.StrOpt(
        "state_path",
        help="The SQLite file of state = sqlite.  A relative path is relative to the "
        "directory of the configuration file that sets it.  Unset: <name>.state.db "
        "beside the first configuration file (in memory when there is no configuration "
        "file; the systemd unit sets "
        "/var/lib/synchronizer/state.db through OS_DEFAULT__STATE_PATH).  One daemon "
        "per file: a second one is refused.",
    ),
    cfg.IntOpt(
        "history_max_changes",
        default=500000,
        min=0,
        help="Most recent changes the state keeps for watchers to resume from (about "
        "600 bytes of disk each with state = sqlite).  A watcher whose position is "
        "older than the history relists instead.  The default covers more than an hour "
        "at 100 changes a second.",
    ),
    cfg.FloatOpt(
        "history_max_age",
        default=3600.0,
        min=0.0,
        help="Seconds a change stays in the history (see history_max_changes; the "
        "tighter bound applies).  The history is never trimmed past what a sink has "
        "not sent yet.",
    ),
    cfg.FloatOpt(
        "bookmark_interval",
        default=10.0,
        min=0.0,
        help="Seconds between bookmarks on the message sink's topic: the current seq "
        "with no change, so an idle watcher's saved position stays fresh and a lost "
        "last change is noticed (0: none).",
    ),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the core options, oslo.messaging's and oslo.log's (idempotent)."""
    conf.register_opts(CORE_OPTS)
    # oslo.messaging's options come with oslo.messaging: the backend is chosen
    # here, where a process first reads its configuration, not at import.
    backend.messaging()
    from oslo_messaging import opts as messaging_opts

    for group, group_opts in messaging_opts.list_opts():
        conf.register_opts(group_opts, group=group)
    _register_tracing_opts(conf)
    try:
        log.register_options(conf)
    except cfg.ArgsAlreadyParsedError:
        LOG.debug("oslo.log options already registered")
    # stdout carries data only (the jsonl sink, the commands' JSON lines):
    # without a log file, logs go to stderr, not oslo.log's stdout default.
    conf.set_default("use_stderr", True)


def _register_tracing_opts(conf: cfg.ConfigOpts) -> None:
    # oslo.messaging 18.x reads [oslo_messaging_tracing] and
    # [oslo_messaging_metrics] from the ConfigOpts an RPC client is given, but
    # registers them on the global CONF only; a private ConfigOpts (ours)
    # must register them itself.
    try:
        from oslo_messaging._metrics import client as metrics
        from oslo_messaging._tracing import client as tracing
    except ImportError:
        return
    conf.register_opts(tracing.oslo_messaging_tracing, group="oslo_messaging_tracing")
    conf.register_opts(metrics.oslo_messaging_metrics, group="oslo_messaging_metrics")


def parse(argv: Sequence[str], *, setup_logging: bool = True) -> cfg.ConfigOpts:
    """A new ConfigOpts with the core options, parsed from ``argv``."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    conf(list(argv), project=PROJECT)
    if setup_logging:
        log.setup(conf, PROJECT)
    return conf


_BAD_VALUE = re.compile(
    r"Value for option (?P<opt>\S+) from LocationInfo\(.*?detail='(?P<file>[^']*)'\)"
    r" is not valid: (?P<reason>.*)",
    re.S,
)


def check_group(conf: cfg.ConfigOpts, group: str | None = None, names: Iterable[str] = ()) -> None:
    """Read the options of ``group`` (DEFAULT: ``names``, or every option it has).

    Raises :class:`ConfigError` with one line naming the file, section,
    option and value for the first malformed or missing required value,
    instead of oslo.config's message (which names a ``LocationInfo``).
    """
    section = conf[group] if group else conf
    keys = list(names) if names or not group else list(section)
    for key in keys:
        try:
            value = section[key]
        except cfg.ConfigFileValueError as exc:
            raise ConfigError(describe_value_error(conf, group or "DEFAULT", exc)) from None
        opt = _opt(conf, group, key)
        if opt is not None and opt.required and value is None:
            files = ", ".join(conf.config_file or ()) or "(no --config-file)"
            raise ConfigError(
                f"{files}: [{group or 'DEFAULT'}] {key}: a value is required and none is set"
            )


def _opt(conf: cfg.ConfigOpts, group: str | None, key: str) -> cfg.Opt | None:
    try:
        return conf._get_opt_info(key, group)["opt"]  # oslo.config has no public lookup
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError, KeyError):
        return None


def describe_value_error(conf: cfg.ConfigOpts, group: str, exc: cfg.ConfigFileValueError) -> str:
    """``FILE: [section] option = value: reason`` for oslo.config's value error."""
    match = _BAD_VALUE.match(str(exc))
    if match is None:
        return f"[{group}] {exc}"
    path, key = match["file"], match["opt"]
    raw = _raw_value(path, group, key)
    shown = f" = {raw}" if raw is not None else ""
    return f"{path}: [{group}] {key}{shown}: {match['reason']}"


def _raw_value(path: str, group: str, key: str) -> str | None:
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(path)
        return parser.get(group, key)
    except (configparser.Error, OSError):
        return None


def config_args(conf: cfg.ConfigOpts) -> list[str]:
    """Arguments that make a worker process parse the same configuration."""
    args: list[str] = []
    for path in conf.config_file or ():
        args += ["--config-file", path]
    dirs = conf.config_dir or []
    for path in [dirs] if isinstance(dirs, str) else dirs:
        args += ["--config-dir", path]
    return args


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Every core option and every installed plugin's, by group, for ``oslo-config-generator``.

    Plugins are found through their entry points; the core imports none of
    them by name.  Groups shared by several plugins (``[service_credentials]``)
    come from their distribution's own ``oslo.config.opts`` entry point.
    """
    from synchronizer import clouds, plugin_loader

    groups = [("DEFAULT", list(CORE_OPTS)), (clouds.group("name"), list(clouds.CLOUD_OPTS))]
    for name, cls in plugin_loader.shipped_plugins():
        groups.append((name, cls.all_options()))
    return groups
