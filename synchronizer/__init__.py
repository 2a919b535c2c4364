"""The polling synchronizer: an always-current view of a cloud, streamed as changes.

Public API::

    from synchronizer import Synchronizer, Change, Entity, Action, Synced
    from synchronizer import CollectorPlugin, NotificationPlugin
"""

import warnings

# futurist probes for eventlet (never used nor monkey-patched here); its
# import-time deprecation banner would only confuse operators.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

from oslo_service import backend as _backend

# oslo.messaging imports oslo.service, whose default backend is eventlet:
# choose the threading backend before anything else imports them.
if _backend.get_backend_type() is None:
    _backend.init_backend(_backend.BackendType.THREADING)

from synchronizer.dispatch.subscriber import Subscription
from synchronizer.model import Action, Change, Entity, Ref, Relation, Source, Synced
from synchronizer.plugin_base import CollectorPlugin, Delta, Notification, NotificationPlugin
from synchronizer.service.library import Synchronizer

__all__ = [
    "Action",
    "Change",
    "CollectorPlugin",
    "Delta",
    "Entity",
    "Notification",
    "NotificationPlugin",
    "Ref",
    "Relation",
    "Source",
    "Subscription",
    "Synced",
    "Synchronizer",
]
