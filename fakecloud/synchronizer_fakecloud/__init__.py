"""A fake OpenStack cloud (and Nagios) served over real HTTP on loopback.

Keystone v3, Nova, Cinder, Neutron, Ironic, Heat and Nagios'
``statusjson.cgi`` answer with the shapes of the real APIs, so that real
clients (keystoneauth1, python-novaclient) talk to it with nothing patched.
It holds 100,000 servers, changes them on command and injects faults::

    from synchronizer_fakecloud import FakeCloud

    with FakeCloud() as cloud:
        cloud.populate(servers=10_000, hosts=100, nagios_services=3)
        cloud.fail_page("nova", page=1)        # second page of a walk -> 500
        ...                                    # point clients at cloud.auth_url

From a shell: ``python -m synchronizer_fakecloud --port 8999 --servers N
--hosts M`` (or ``synchronizer-fakecloud``), then drive it over HTTP under
``/_control`` (see :mod:`synchronizer_fakecloud.control`).
"""

from synchronizer_fakecloud.cloud import Cloud, RecordView
from synchronizer_fakecloud.faults import CORRUPTIONS, SERVICES
from synchronizer_fakecloud.keystone import Credentials
from synchronizer_fakecloud.kinds import KINDS
from synchronizer_fakecloud.server import FakeCloud
from synchronizer_fakecloud.stats import RequestRecord

__all__ = [
    "CORRUPTIONS",
    "KINDS",
    "SERVICES",
    "Cloud",
    "Credentials",
    "FakeCloud",
    "RecordView",
    "RequestRecord",
]
