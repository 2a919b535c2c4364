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
=================  ==========================  ====================
"""

from __future__ import annotations

from synchronizer.fakecloud.cinder import VolumeKind
from synchronizer.fakecloud.heat import StackKind
from synchronizer.fakecloud.ironic import NodeKind
from synchronizer.fakecloud.nagios import NagiosServiceKind
from synchronizer.fakecloud.neutron import NetworkKind, PortKind
from synchronizer.fakecloud.nova_flavors import FlavorKind
from synchronizer.fakecloud.nova_hosts import HypervisorKind
from synchronizer.fakecloud.nova_servers import ServerKind
from synchronizer.fakecloud.state import KindSpec


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
    ]
    return {spec.name: spec for spec in specs}


KINDS = tuple(registry())
