"""The shipped plugins' shared options, for ``oslo-config-generator``.

Each plugin's own group comes from the core's generator entry point (it
walks every installed plugin); this adds the groups the plugins share.
"""

from __future__ import annotations

from oslo_config import cfg

from synchronizer_plugins import openstack


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """``[service_credentials]``: keystoneauth1's session and auth options."""
    return [(openstack.GROUP, openstack.list_opts())]
