"""The entity kinds of the fake cloud, by name.

=================  ==========================  ====================
kind               key                         served by
=================  ==========================  ====================
servers            server uuid                 Nova
flavors            flavor id                   Nova
hypervisors        compute host name           Nova (also zones,
                                               services)
volumes            volume uuid                 Cinder
networks, ports    uuid                        Neutron
nodes              node uuid                   Ironic
stacks             stack uuid                  Heat
nagios_services    ``host_name;description``   Nagios
nagios_hosts       host name                   Nagios
=================  ==========================  ====================
"""

from __future__ import annotations

from synchronizer_fakecloud.cinder import VolumeKind
from synchronizer_fakecloud.heat import StackKind
from synchronizer_fakecloud.ironic import NodeKind
from synchronizer_fakecloud.nagios import NagiosHostKind, NagiosServiceKind
from synchronizer_fakecloud.neutron import NetworkKind, PortKind
from synchronizer_fakecloud.nova_flavors import FlavorKind
from synchronizer_fakecloud.nova_hosts import HypervisorKind
from synchronizer_fakecloud.nova_servers import ServerKind
from synchronizer_fakecloud.state import KindSpec


def registry() -> dict[str, KindSpec]:
    """A fresh ``{kind name: spec}`` of every kind."""
    specs: list[KindSpec] = [
        ServerKind(),
        FlavorKind(),
        HypervisorKind(),
        VolumeKind(),
        NetworkKind(),
        PortKind(),
        NodeKind(),
        StackKind(),
        NagiosServiceKind(),
        NagiosHostKind(),
    ]
    return {spec.name: spec for spec in specs}


KINDS = tuple(registry())
