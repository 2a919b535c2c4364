"""The daemon's RPC surface as both sides see it: topic, namespace, version.

The server (:mod:`synchronizer.outputs.rpc`) and the consumer-side client
(:mod:`synchronizer.outputs.client`) agree on these and nothing else; the
client never imports the server.  Methods of namespace ``synchronizer``,
version 1.1:

``snapshot_begin(types)``     → ``{id, count, chunks, seq, epoch, server}``: the view
``history_begin(types, epoch, after)`` → the same for the changes after
                              ``after`` up to ``seq``, with ``gone: false``; or
                              ``{gone: true, why, epoch}`` when ``epoch`` is not the
                              store's or ``after`` is older than its history
``snapshot_chunk(id, index)`` → a list of change dicts (the JSON of a change)
``snapshot_end(id)``          (cast) frees the snapshot or history read
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from synchronizer import backend

if TYPE_CHECKING:
    import oslo_messaging
    from oslo_config import cfg

NAMESPACE = "synchronizer"
VERSION = "1.1"  # 1.1: history_begin, epoch in answers


def target(conf: cfg.ConfigOpts, server: str | None = None) -> oslo_messaging.Target:
    """The target of the daemon's view endpoint (``server``: one daemon)."""
    return backend.messaging().Target(
        topic=conf.rpc_topic, server=server, namespace=NAMESPACE, version=VERSION
    )
