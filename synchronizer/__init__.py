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

from synchronizer.core import Synchronizer
from synchronizer.entity import Action, Change, Entity, Ref, Relation, Source, Synced
from synchronizer.plugin import CollectorPlugin, Delta, Notification, NotificationPlugin
from synchronizer.subscriber import Subscription

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
