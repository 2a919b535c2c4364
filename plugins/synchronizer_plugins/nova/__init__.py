"""Nova (Compute) plugins: instance, host and zone collectors, and notifications.

Every plugin here produces the shapes defined in :mod:`synchronizer_plugins.nova.shapes`,
so a polled and a notified state of the same entity fingerprint alike.  What
the three collectors share (the novaclient client, microversion negotiation,
paging, error mapping) is :class:`synchronizer_plugins.nova.collector.NovaCollector`.

Importing this package, its shapes or its notification plugin loads no HTTP
client: only the collectors load python-novaclient.  The collector's names
are still reachable from here, loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PLUGIN_MAX_MICROVERSION", "NovaCollector", "translate_error"]


def __getattr__(name: str) -> Any:
    # PEP 562: the names this package always exported, without loading
    # novaclient for whoever imports only the shapes.
    if name in __all__:
        return getattr(importlib.import_module("synchronizer_plugins.nova.collector"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
