"""Config lines that point the OpenStack collectors at a fake cloud."""

from __future__ import annotations

from synchronizer_fakecloud import FakeCloud


def service_credentials(
    cloud: FakeCloud, password: str | None = None, timeout: float | None = 10
) -> list[str]:
    """The ``[service_credentials]`` section for the fake cloud's one user.

    ``password`` defaults to the cloud's own (pass another to test a wrong
    one); ``timeout=None`` leaves keystoneauth's default.
    """
    creds = cloud.credentials
    lines = [
        "[service_credentials]",
        "auth_type = password",
        f"auth_url = {cloud.auth_url}",
        f"username = {creds.username}",
        f"password = {creds.password if password is None else password}",
        f"project_name = {creds.project_name}",
        f"user_domain_id = {creds.domain_id}",
        f"project_domain_id = {creds.domain_id}",
        f"region_name = {creds.region}",
        "interface = public",
    ]
    if timeout is not None:
        lines.append(f"timeout = {timeout:g}")
    return lines


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
