"""Shared pieces of the outputs tests: real changes, a seeded dispatcher, a bus config."""

from __future__ import annotations

import uuid
from pathlib import Path

from oslo_config import cfg

from synchronizer import fingerprint, opts
from synchronizer.dispatch.dispatcher import Dispatcher
from synchronizer.model import Action, Change, Entity, Source

SRC = Source("poll", "test")


def change(
    key: str,
    state: str = "up",
    *,
    type_: str = "test.thing",
    action: Action = Action.UPDATE,
    ts: str = "2026-01-01T00:00:00.000000Z",
    seq: int = 0,
) -> Change:
    """A fingerprinted change of one entity, as a worker hands it to the dispatcher."""
    entity = Entity(type_, key, state=state, timestamp=ts, source=SRC, properties={"k": key})
    return Change(action, entity, fingerprint.of(entity), seq=seq)


def seeded(keys_by_type: dict[str, list[str]]) -> Dispatcher:
    """A real dispatcher whose view holds these entities."""
    dispatcher = Dispatcher()
    dispatcher.dispatch(
        [change(k, type_=t, action=Action.CREATE) for t, keys in keys_by_type.items() for k in keys]
    )
    return dispatcher


def bus_conf(tmp_path: Path, *lines: str) -> cfg.ConfigOpts:
    """A parsed config on oslo.messaging's in-memory ``fake:`` transport, topics of its own."""
    u = uuid.uuid4().hex[:10]
    path = tmp_path / f"bus-{u}.conf"
    path.write_text(
        "\n".join(
            [
                "[DEFAULT]",
                "transport_url = fake:/",
                "sinks = message",
                f"message_topic = changes_{u}",
                f"rpc_topic = view_{u}",
                *lines,
            ]
        )
        + "\n"
    )
    return opts.parse(["--config-file", str(path)], setup_logging=False)
