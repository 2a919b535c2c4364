"""The polling synchronizer: an always-current view of a cloud, streamed as changes.

Public API::

    from synchronizer import Synchronizer, Change, Entity, Action, Synced
    from synchronizer import CollectorPlugin, EntityDoc, NotificationPlugin

Importing this package (or any of its modules) has no effect on the host
process: the names below are loaded on first use, nothing of oslo.messaging
or oslo.service is imported, and no oslo.service backend is chosen until a
process starts the daemon's parts (see :mod:`synchronizer.backend`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synchronizer.dispatch.subscriber import Subscription
    from synchronizer.model import Action, Change, Entity, Ref, Relation, Source, Synced
    from synchronizer.plugin_base import (
        CollectorPlugin,
        Delta,
        EntityDoc,
        Notification,
        NotificationPlugin,
    )
    from synchronizer.service.library import Synchronizer

_EXPORTS = {
    "Action": "synchronizer.model",
    "Change": "synchronizer.model",
    "CollectorPlugin": "synchronizer.plugin_base",
    "Delta": "synchronizer.plugin_base",
    "Entity": "synchronizer.model",
    "EntityDoc": "synchronizer.plugin_base",
    "Notification": "synchronizer.plugin_base",
    "NotificationPlugin": "synchronizer.plugin_base",
    "Ref": "synchronizer.model",
    "Relation": "synchronizer.model",
    "Source": "synchronizer.model",
    "Subscription": "synchronizer.dispatch.subscriber",
    "Synced": "synchronizer.model",
    "Synchronizer": "synchronizer.service.library",
}

__all__ = [
    "Action",
    "Change",
    "CollectorPlugin",
    "Delta",
    "Entity",
    "EntityDoc",
    "Notification",
    "NotificationPlugin",
    "Ref",
    "Relation",
    "Source",
    "Subscription",
    "Synced",
    "Synchronizer",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'synchronizer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
