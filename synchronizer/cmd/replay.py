"""``synchronizer-replay --config-file F FILE...``: notifications through the plugins.

Each FILE holds one notification as JSON (``priority``, ``event_type``,
``publisher_id``, ``payload``, optional ``timestamp`` and ``message_id``),
a JSON list of them, or an object of named ones (as the sample sets of
OpenStack projects hold them).  Objects of the form ``{"$ref": "other.json",
...}`` are replaced by that file, relative to the file holding the
reference, with the other keys merged over it (the rule of Nova's
documentation samples, ``nova/tests/json_ref.py``), so those samples replay
as they are.  The notifications go through the configured notification
plugins exactly as on the bus (same validation, same counters) and the
resulting changes are printed as JSON lines; no broker is needed and
collectors are not started.

On stderr: one line per file with its counts (``mapped``, ``ignored``,
``dropped``), then a summary.  The exit status is 0 when every file was
read and no notification was dropped, 1 otherwise, 2 without a
notification plugin.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from oslo_config import cfg

from synchronizer import clouds, cmd, plugin_loader
from synchronizer.plugin_base import NotificationPlugin
from synchronizer.wire import Outcome, PluginState
from synchronizer.workers.converter import Converter

CLI_OPTS = [cfg.MultiStrOpt("files", positional=True, default=[], help="Notification files.")]
OUTCOMES = (Outcome.MAPPED, Outcome.IGNORED, Outcome.DROPPED)


class UnreadableFile(Exception):
    """A file, or a file it references, cannot be read as JSON."""


@cmd.writes_data
def main(argv: list[str] | None = None) -> int:
    conf = cmd.parse(
        argv,
        prog="synchronizer-replay",
        cli_opts=CLI_OPTS,
        description="Run notification files through the configured notification plugins "
        "and print the changes they give as JSON lines.",
        setup_logging=False,
    )
    plugins = _plugins(conf)
    if not plugins:
        print("synchronizer-replay: no notification plugin configured", file=sys.stderr)
        return 2
    converter = Converter(plugins, conf.notification_max_bytes)
    out = sys.stdout.buffer
    unreadable = 0
    for path in conf.files:
        try:
            items = read(Path(path))
        except UnreadableFile as exc:
            print(f"synchronizer-replay: {path}: unreadable: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        before = collections.Counter(converter.counts)
        for raw in items:
            for change in converter.convert(raw):
                out.write(change.to_json() + b"\n")
        counts = " ".join(f"{o}={converter.counts[o] - before[o]}" for o in OUTCOMES)
        print(
            f"synchronizer-replay: {path}: {len(items)} notification(s), {counts}", file=sys.stderr
        )
    out.flush()
    summary = " ".join(f"{o}={converter.counts[o]}" for o in (Outcome.RECEIVED, *OUTCOMES))
    print(
        f"synchronizer-replay: {len(conf.files)} file(s), {summary} unreadable={unreadable}",
        file=sys.stderr,
    )
    return 1 if unreadable or converter.counts[Outcome.DROPPED] else 0


def _plugins(conf: cfg.ConfigOpts) -> list[NotificationPlugin]:
    def report(name: str, state: PluginState, reason: str) -> None:
        print(f"synchronizer-replay: {name}: {state}: {reason}", file=sys.stderr)

    loaded = plugin_loader.load(
        conf, clouds.plugin_names(conf), NotificationPlugin, report, skip_other_kinds=True
    )
    return list(loaded.values())


def read(path: Path) -> list[Any]:
    """The notifications of one file, references resolved; UnreadableFile if it cannot be."""
    try:
        data = resolve_refs(_load(path), path.parent, (path.resolve(),))
    except RecursionError:
        raise UnreadableFile("JSON nested too deeply") from None
    if isinstance(data, list):
        return data
    if isinstance(data, Mapping) and "event_type" not in data and _all_notifications(data):
        return list(data.values())
    return [data]


def _all_notifications(data: Mapping[str, Any]) -> bool:
    return bool(data) and all(isinstance(v, Mapping) and "event_type" in v for v in data.values())


def _load(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise UnreadableFile(str(exc)) from exc


def resolve_refs(obj: Any, directory: Path, chain: tuple[Path, ...]) -> Any:
    """``obj`` with every ``{"$ref": "file#", ...}`` replaced by that file, keys merged over.

    ``chain`` holds the files being resolved, to refuse a reference cycle.
    """
    if isinstance(obj, list):
        return [resolve_refs(item, directory, chain) for item in obj]
    if not isinstance(obj, dict):
        return obj
    ref = obj.get("$ref")
    rest = {k: resolve_refs(v, directory, chain) for k, v in obj.items() if k != "$ref"}
    if ref is None:
        return rest
    if not isinstance(ref, str):
        raise UnreadableFile(f"$ref must be a file name, got {ref!r}")
    name, _, fragment = ref.partition("#")
    if fragment:
        raise UnreadableFile(f"$ref {ref!r}: fragments are not supported")
    target = (directory / name).resolve()
    if target in chain:
        raise UnreadableFile(f"$ref cycle through {target}")
    loaded = resolve_refs(_load(target), target.parent, (*chain, target))
    return _merge(loaded, rest)


def _merge(base: Any, over: Any) -> Any:
    """``over`` merged into ``base``: objects key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return over


if __name__ == "__main__":
    sys.exit(main())
