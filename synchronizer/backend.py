"""oslo.service's backend: chosen where a process starts, never at import.

oslo.service picks its backend (eventlet unless told otherwise) the first
time anything asks for it, and importing oslo.messaging does ask.  The
synchronizer runs on the threading backend, so every code path that is
about to import oslo.messaging or oslo.service calls :func:`select` first:
it chooses threading when the process has not chosen yet and leaves a host
application's earlier choice alone.  Importing any synchronizer module
therefore neither loads oslo.messaging nor selects a backend; the daemon's
main, a worker's main, ``opts.parse`` and ``Synchronizer.start`` do::

    from synchronizer import backend

    oslo_messaging = backend.messaging()   # threading chosen, then imported
"""

from __future__ import annotations

import logging
import warnings
from types import ModuleType

LOG = logging.getLogger(__name__)

# futurist (under oslo.messaging) probes for eventlet, which it never uses
# here; the probe's deprecation banner would only confuse operators.
_EVENTLET_BANNER = r"\s*Eventlet is deprecated"


def select() -> str:
    """Choose the threading backend unless this process chose one; return the choice."""
    from oslo_service import backend

    chosen = backend.get_backend_type()
    if chosen is None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_EVENTLET_BANNER)
            backend.init_backend(backend.BackendType.THREADING)
        return backend.BackendType.THREADING.value
    if chosen is not backend.BackendType.THREADING:
        LOG.debug("oslo.service backend already chosen by the host process: %s", chosen.value)
    return chosen.value


def messaging() -> ModuleType:
    """``oslo_messaging``, imported after :func:`select`."""
    select()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_EVENTLET_BANNER)
        import oslo_messaging
    return oslo_messaging
