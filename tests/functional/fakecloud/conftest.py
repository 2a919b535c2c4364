"""Fixtures: a running fake cloud and keystoneauth sessions against it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from synchronizer_fakecloud import FakeCloud
from synchronizer_fakecloud.clock import Clock


@pytest.fixture
def cloud(manual_time: ManualTime) -> Iterator[FakeCloud]:
    """A fresh, empty fake cloud on an ephemeral port, on manual time."""
    with FakeCloud(clock=Clock(manual_time)) as fake:
        yield fake


class ManualTime:
    """A time source that only moves when told to."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@pytest.fixture
def manual_time() -> ManualTime:
    """The time source of the ``cloud`` fixture; tests advance it."""
    return ManualTime()


@pytest.fixture
def populated(cloud: FakeCloud) -> FakeCloud:
    """The fake cloud with a small but complete topology."""
    cloud.populate(
        servers=120,
        hosts=4,
        volumes=10,
        networks=3,
        ports=10,
        nodes=5,
        stacks=4,
        nagios_services=2,
        zones=2,
    )
    return cloud


@pytest.fixture
def password_auth(cloud: FakeCloud) -> Callable[..., v3.Password]:
    """Factory of keystoneauth password plugins for the cloud's admin."""

    def make(password: str = "secret", system: bool = False) -> v3.Password:  # noqa: S107
        scope = (
            {"system_scope": "all"}
            if system
            else {"project_name": "admin", "project_domain_id": "default"}
        )
        return v3.Password(
            auth_url=cloud.auth_url,
            username="admin",
            password=password,
            user_domain_name="Default",
            **scope,
        )

    return make


@pytest.fixture
def session(password_auth: Callable[..., v3.Password]) -> ks_session.Session:
    """A keystoneauth session authenticated by password."""
    return ks_session.Session(auth=password_auth())


@pytest.fixture
def system_session(password_auth: Callable[..., v3.Password]) -> ks_session.Session:
    """A keystoneauth session with a system-scoped token (what Ironic wants)."""
    return ks_session.Session(auth=password_auth(system=True))


@pytest.fixture
def get(
    session: ks_session.Session, system_session: ks_session.Session
) -> Callable[..., requests.Response]:
    """GET on a catalog service at an optional microversion: get(type, path, ver).

    Ironic is asked with a system-scoped token, as its policy wants (a
    project-scoped one sees only its project's nodes).
    """

    def call(
        service_type: str, path: str, version: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if version:
            name = {"compute": "compute", "volumev3": "volume", "baremetal": "baremetal"}[
                service_type
            ]
            headers["OpenStack-API-Version"] = f"{name} {version}"
        sess = system_session if service_type == "baremetal" else session
        return sess.get(
            path, endpoint_filter={"service_type": service_type}, headers=headers, **kwargs
        )

    return call


@pytest.fixture
def token(session: ks_session.Session) -> str:
    """A valid token id, for raw HTTP requests."""
    return session.get_token()
