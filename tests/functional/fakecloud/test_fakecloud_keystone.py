"""Keystone of the fake cloud, driven by real keystoneauth1 sessions."""

from __future__ import annotations

import time

import pytest
import requests
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import generic, v3

from synchronizer_fakecloud import FakeCloud

SERVICE_PATHS = {
    "compute": "/servers/detail",
    "volumev3": "/volumes/detail",
    "network": "/v2.0/networks",
    "baremetal": "/v1/nodes/detail",
    "orchestration": "/stacks",
}


def test_password_auth_gives_catalog_endpoints(cloud, session):
    """A password-scoped token's catalog resolves every service's public URL."""
    project = cloud.credentials.project_id
    assert session.get_endpoint(service_type="compute", interface="public") == (
        cloud.url + "/compute/v2.1"
    )
    assert session.get_endpoint(service_type="volumev3", interface="internal") == (
        f"{cloud.url}/volume/v3/{project}"
    )
    assert session.get_endpoint(service_type="block-storage", interface="public") == (
        f"{cloud.url}/volume/v3/{project}"
    )
    assert session.get_endpoint(service_type="network", interface="admin") == (
        cloud.url + "/network"
    )
    assert session.get_endpoint(service_type="baremetal") == cloud.url + "/baremetal"
    assert session.get_endpoint(service_type="orchestration") == (f"{cloud.url}/heat/v1/{project}")


def test_token_body_has_project_user_roles_and_expiry(cloud, session):
    """The token carries project, user, admin role and expires_at as keystoneauth reads them."""
    access = session.auth.get_access(session)
    assert access.project_id == cloud.credentials.project_id
    assert access.user_id == cloud.credentials.user_id
    assert "admin" in access.role_names
    assert access.expires is not None
    assert access.service_catalog.get_endpoints()["identity"]


@pytest.mark.parametrize("by", ["id", "name"])
def test_application_credential_auth(cloud, by):
    """An application credential, by id or by name and user, gets a project token."""
    creds = cloud.credentials
    if by == "id":
        auth = v3.ApplicationCredential(
            auth_url=cloud.auth_url,
            application_credential_id=creds.app_cred_id,
            application_credential_secret=creds.app_cred_secret,
        )
    else:
        auth = v3.ApplicationCredential(
            auth_url=cloud.auth_url,
            application_credential_name=creds.app_cred_name,
            application_credential_secret=creds.app_cred_secret,
            username="admin",
            user_domain_id="default",
        )
    sess = ks_session.Session(auth=auth)
    assert sess.get("/servers/detail", endpoint_filter={"service_type": "compute"}).ok
    assert sess.auth.get_access(sess).project_id == creds.project_id


def test_wrong_password_is_unauthorized(password_auth):
    """A wrong password is refused with 401, which keystoneauth raises as Unauthorized."""
    sess = ks_session.Session(auth=password_auth("wrong"))
    with pytest.raises(ks_exc.Unauthorized):
        sess.get_token()


def test_wrong_app_credential_secret_is_unauthorized(cloud):
    """A wrong application credential secret is refused with 401."""
    auth = v3.ApplicationCredential(
        auth_url=cloud.auth_url,
        application_credential_id=cloud.credentials.app_cred_id,
        application_credential_secret="nope",
    )
    with pytest.raises(ks_exc.Unauthorized):
        ks_session.Session(auth=auth).get_token()


@pytest.mark.parametrize(("service_type", "path"), sorted(SERVICE_PATHS.items()))
def test_every_service_rejects_unknown_token(cloud, session, service_type, path):
    """Every OpenStack service answers 401 to a request with an unknown token."""
    url = session.get_endpoint(service_type=service_type) + path
    resp = requests.get(url, headers={"X-Auth-Token": "bogus"}, timeout=5)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_short_token_lifetime_is_renewed_transparently(cloud, session, get):
    """With 2-second tokens, keystoneauth keeps re-authenticating and every call succeeds."""
    cloud.token_expiry(2)
    session.invalidate()
    before = cloud.tokens_issued
    for _ in range(3):
        assert get("compute", "/os-hypervisors").status_code == 200
    assert cloud.tokens_issued > before


def test_expired_token_gets_401_then_keystoneauth_reauthenticates(cloud, session, get):
    """A token revoked server-side gets a 401, and keystoneauth re-authenticates and retries."""
    get("compute", "/os-hypervisors")
    issued = cloud.tokens_issued
    cloud.revoke_tokens()
    assert get("compute", "/os-hypervisors").status_code == 200
    assert cloud.tokens_issued == issued + 1
    assert cloud.request_count(path="/os-hypervisors") == 3


def test_expired_token_is_refused(cloud):
    """A token past its expires_at is refused by the services."""
    cloud.token_expiry(0.2)
    short = requests.post(
        cloud.auth_url + "/auth/tokens",
        json={
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": "admin", "domain": {"id": "default"}, "password": "secret"}
                    },
                },
                "scope": {"project": {"id": cloud.credentials.project_id}},
            }
        },
        timeout=5,
    )
    assert short.status_code == 201
    url = cloud.url + "/compute/v2.1/servers/detail"
    subject = short.headers["X-Subject-Token"]
    assert requests.get(url, headers={"X-Auth-Token": subject}, timeout=5).status_code == 200
    time.sleep(0.3)
    assert requests.get(url, headers={"X-Auth-Token": subject}, timeout=5).status_code == 401


@pytest.mark.parametrize(
    ("mode", "error"), [("refuse", ks_exc.ConnectFailure), ("503", ks_exc.ServiceUnavailable)]
)
def test_keystone_down(cloud, password_auth, mode, error):
    """Keystone down drops the connection or answers 503; keystoneauth raises accordingly."""
    cloud.keystone_down(True, mode=mode)
    with pytest.raises(error):
        ks_session.Session(auth=password_auth()).get_token()
    cloud.keystone_down(False)
    assert ks_session.Session(auth=password_auth()).get_token()


def test_version_documents_need_no_token(cloud):
    """Identity discovery documents are served without a token."""
    root = requests.get(cloud.url + "/identity", timeout=5)
    assert root.status_code == 300
    assert root.json()["versions"]["values"][0]["id"].startswith("v3")
    v3_doc = requests.get(cloud.auth_url, timeout=5).json()["version"]
    assert v3_doc["status"] == "stable"


def test_generic_password_plugin_discovers_v3(cloud):
    """keystoneauth's version-agnostic Password plugin discovers v3 from /identity."""
    auth = generic.Password(
        auth_url=cloud.url + "/identity",
        username="admin",
        password="secret",
        project_name="admin",
        user_domain_id="default",
        project_domain_id="default",
    )
    assert ks_session.Session(auth=auth).get_token()


def test_secrets_never_logged(cloud, password_auth, caplog):
    """The fake cloud's logs never contain the password or the token."""
    caplog.set_level("DEBUG", logger="synchronizer_fakecloud")
    sess = ks_session.Session(auth=password_auth())
    token = sess.get_token()
    sess.get("/servers/detail", endpoint_filter={"service_type": "compute"})
    text = caplog.text
    assert "secret" not in text
    assert token not in text
    assert "/servers/detail" in text


def test_fake_cloud_repr_hides_secrets():
    """Credentials print without their password and application credential secret."""
    fake = FakeCloud()
    assert "secret" not in repr(fake.credentials)


def test_a_system_scoped_token_has_the_system_and_no_project_endpoints(cloud, password_auth):
    """As Keystone: system scope, roles, and services whose URL holds a project id unlisted."""
    auth = password_auth(system=True)
    sess = ks_session.Session(auth=auth)
    access = auth.get_access(sess)
    assert access.system_scoped
    assert access.system == {"all": True}
    assert access.project_id is None
    assert "admin" in access.role_names
    assert sess.get_endpoint(service_type="baremetal") == cloud.url + "/baremetal"
    catalog = {entry["type"]: entry["endpoints"] for entry in access.service_catalog.catalog}
    assert catalog["orchestration"] == catalog["volumev3"] == []
