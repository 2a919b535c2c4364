"""Suite-wide setup.

Importing ``synchronizer`` first selects oslo.service's threading backend
before any test module imports oslo.messaging (which would otherwise pick
the eventlet default).
"""

import synchronizer  # noqa: F401
