"""The end-to-end tier: a real Keystone and Nova from the ``realcloud`` kit.

The kit (``../shared/realcloud`` beside the checkout, or ``$REALCLOUD_KIT``)
brings up Keystone, Glance, Placement and Nova with the fake virt driver on
127.0.0.1.  When the cloud is not answering, the session installs and starts
it, and stops it again at the end; a cloud that was already up is left up.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import REPO

KIT = Path(os.environ.get("REALCLOUD_KIT") or REPO.parent / "shared" / "realcloud")
ENDPOINTS = ("http://127.0.0.1:5000/v3", "http://127.0.0.1:8774/")


def _answering() -> bool:
    for url in ENDPOINTS:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback
                if response.status >= 400:
                    return False
        except OSError:
            return False
    return True


def _kit_env() -> dict[str, str]:
    """The variables ``env.sh`` exports (credentials, transport URL, kit python)."""
    out = subprocess.run(
        ["bash", "-c", f'source "{KIT}/env.sh" && env -0'],
        check=True,
        capture_output=True,
    ).stdout
    env = dict(os.environ)
    for item in out.split(b"\0"):
        name, sep, value = item.decode().partition("=")
        if sep:
            env[name] = value
    return env


class RealCloud:
    """Drives the kit's Nova through its ``boot.py`` (waits for each state)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.python = env["REALCLOUD_PYTHON"]

    def boot_py(self, *args: str, timeout: float = 240) -> list[str]:
        result = subprocess.run(
            [self.python, str(KIT / "boot.py"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"boot.py {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]

    def boot(self, n: int, prefix: str) -> list[str]:
        return self.boot_py("-n", str(n), "--prefix", prefix)

    def stop(self, *ids: str) -> None:
        self.boot_py("--stop", *ids)

    def start(self, *ids: str) -> None:
        self.boot_py("--start", *ids)

    def delete(self, *ids: str) -> None:
        self.boot_py("--delete", *ids)

    def session(self):
        from keystoneauth1 import session
        from keystoneauth1.identity import v3

        auth = v3.Password(
            auth_url=self.env["OS_AUTH_URL"],
            username=self.env["OS_USERNAME"],
            password=self.env["OS_PASSWORD"],
            project_name=self.env["OS_PROJECT_NAME"],
            user_domain_id=self.env["OS_USER_DOMAIN_ID"],
            project_domain_id=self.env["OS_PROJECT_DOMAIN_ID"],
        )
        return session.Session(auth=auth)

    def compute_max_version(self) -> str:
        with urllib.request.urlopen("http://127.0.0.1:8774/", timeout=10) as response:
            versions = json.load(response)["versions"]
        return next(v["version"] for v in versions if v["id"] == "v2.1")


@pytest.fixture(scope="session")
def realcloud() -> Iterator[RealCloud]:
    if not (KIT / "up.sh").exists():
        reason = f"the realcloud kit is not at {KIT} (set REALCLOUD_KIT)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " - the e2e tier must not skip under CI")
        pytest.skip(reason)
    started = False
    if not _answering():
        for step in ("install.sh", "up.sh"):
            subprocess.run([str(KIT / step)], check=True, timeout=1800)
        started = True
    cloud = RealCloud(_kit_env())
    cloud.boot_py("--delete-all")
    yield cloud
    try:
        cloud.boot_py("--delete-all")
    finally:
        if started:
            subprocess.run([str(KIT / "down.sh")], check=False, timeout=120)
