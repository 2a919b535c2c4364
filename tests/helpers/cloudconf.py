"""Config lines that point the OpenStack collectors at a fake cloud.

``service_credentials`` is :mod:`synchronizer_fakecloud.testbed`'s (the
benchmarks write it too).
"""

from __future__ import annotations

from synchronizer_fakecloud import FakeCloud
from synchronizer_fakecloud.testbed import service_credentials

__all__ = ["SYSTEM_GROUP", "service_credentials", "system_credentials"]


SYSTEM_GROUP = "system_credentials"


def system_credentials(
    cloud: FakeCloud, password: str | None = None, timeout: float | None = 10
) -> list[str]:
    """A system-scoped credentials group (Ironic lists every node only to such a token).

    Point the Ironic collector at it with ``[ironic.node] credentials =
    system_credentials``, as the README tells operators to.
    """
    lines = [
        line.replace("[service_credentials]", f"[{SYSTEM_GROUP}]")
        for line in service_credentials(cloud, password, timeout)
        if not line.startswith(("project_name", "project_domain_id"))
    ]
    return [*lines, "system_scope = all"]
