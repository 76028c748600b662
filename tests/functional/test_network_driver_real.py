"""The libvirt macvtap driver against a real libvirtd and real netdevs."""

import libvirt_hosts
import pytest
from oslo_config import cfg

from pci_passthrough.config import opts
from pci_passthrough.fixtures.guest import guest_xml
from pci_passthrough.network import load_network_driver
from pci_passthrough.network.base import NetworkSpec

pytestmark = pytest.mark.functional

UUID = "4f1a2b3c-0000-4000-8000-00000000abcd"


def driver_for(host: libvirt_hosts.LibvirtHost, mode: str = "passthrough"):
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([])
    conf.set_override("libvirt_uri", host.uri, group="pci_passthrough")
    conf.set_override("macvtap_mode", mode, group="pci_passthrough")
    return load_network_driver(conf)


@pytest.mark.parametrize("mode,ip_mode", [("passthrough", "passthru"),
                                          ("bridge", "bridge")])
def test_guest_gets_a_macvtap_on_exactly_the_networks_netdev(
        host_a, mode, ip_mode):
    driver = driver_for(host_a, mode)
    name = f"pcipt-{UUID}-0"
    try:
        assert driver.ensure_network(NetworkSpec(name, "vfa1")) is True
        assert driver.ensure_network(NetworkSpec(name, "vfa1")) is False
        conn = host_a.connect()
        net = conn.networkLookupByName(name)
        assert net.isActive() and net.isPersistent() and net.autostart()
        iface = driver.interface_xml(name, "52:54:00:aa:bb:01")
        dom = conn.createXML(guest_xml("guest0", [iface]), 0)
        (tap,) = host_a.macvtaps()
        assert (tap["link"], tap["mode"]) == ("vfa1", ip_mode)
        # The domain still refers to the network by name.
        assert f"network='{name}'" in dom.XMLDesc(0).replace('"', "'")
        dom.destroy()
        assert host_a.macvtaps() == []
        conn.close()
        assert driver.delete_network(name) is True
        assert driver.delete_network(name) is False
        assert driver.list_networks("pcipt-") == {}
    finally:
        driver.close()


def test_rewrite_moves_the_network_to_another_netdev(host_a):
    driver = driver_for(host_a)
    name = f"pcipt-{UUID}-1"
    try:
        driver.ensure_network(NetworkSpec(name, "vfa0"))
        assert driver.ensure_network(NetworkSpec(name, "vfa1")) is True
        assert driver.list_networks("pcipt-") == {
            name: NetworkSpec(name, "vfa1")}
        conn = host_a.connect()
        iface = driver.interface_xml(name, None)
        dom = conn.createXML(guest_xml("guest1", [iface]), 0)
        assert [t["link"] for t in host_a.macvtaps()] == ["vfa1"]
        dom.destroy()
        conn.close()
    finally:
        driver.delete_network(name)
        driver.close()
