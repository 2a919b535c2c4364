"""Suite-wide setup.

The test process is a process that starts the synchronizer's parts, so it
chooses oslo.service's threading backend here, before any test module
imports oslo.messaging (which would otherwise pick the eventlet default).
"""

from synchronizer import backend

backend.select()
