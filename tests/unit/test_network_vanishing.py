"""A network deleted between libvirt's listing and its inspection (an
agent releasing its instance while doctor looks) is not there; any other
libvirt error still fails.  The deletion is made for real on libvirt's
test driver, by a driver whose listing hook deletes right after it
lists."""

import libvirt
import pytest
from oslo_config import cfg

from pci_passthrough import PortRequest, exception
from pci_passthrough.config import opts
from pci_passthrough.doctor.report import FindingKind
from pci_passthrough.fixtures import sysfs_tree as st
from pci_passthrough.fixtures.agent_host import AgentHost, new_uuid
from pci_passthrough.fixtures.simulated_host import libvirt_test_uri
from pci_passthrough.network.base import NetworkSpec
from pci_passthrough.network.libvirt_macvtap import LibvirtMacvtapDriver

UUID = "4f1a2b3c-0000-4000-8000-00000000abcd"
NAMES = [f"pcipt-{UUID}-{i}" for i in range(3)]


class DeleteAfterListing(LibvirtMacvtapDriver):
    """The real driver; right after its next listing, ``delete()`` runs
    (once), as another process's release would."""

    def __init__(self, conf, connection, delete):
        super().__init__(conf, connection=connection)
        self.delete = delete

    def _listed(self, conn, prefix):
        listed = super()._listed(conn, prefix)
        delete, self.delete = self.delete, None
        if delete is not None:
            delete()
        return listed


class FailingInspection(LibvirtMacvtapDriver):
    """The real driver; inspecting network ``name`` fails with a daemon
    error the test driver cannot produce."""

    def __init__(self, conf, connection, name):
        super().__init__(conf, connection=connection)
        self.name = name

    def _status_of(self, net):
        if net.name() == self.name:
            libvirt.virResetLastError()
            err = libvirt.libvirtError("constructed")
            err.err = (libvirt.VIR_ERR_INTERNAL_ERROR,
                       libvirt.VIR_FROM_NETWORK, "internal error", 2, None,
                       None, None, -1, -1)
            raise err
        return super()._status_of(net)


def make_conf(uri):
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([])
    conf.set_override("libvirt_uri", uri, group="pci_passthrough")
    return conf


def remove(conn, name):
    net = conn.networkLookupByName(name)
    net.destroy()
    net.undefine()


@pytest.fixture
def conn(tmp_path):
    connection = libvirt.open(libvirt_test_uri(tmp_path / "host.xml"))
    yield connection
    connection.close()


def defined(conn, cls, *args):
    drv = cls(make_conf(conn.getURI()), conn, *args)
    for i, name in enumerate(NAMES):
        drv.ensure_network(NetworkSpec(name, f"ens1f0v{i}"))
    return drv


@pytest.mark.parametrize("method", ["network_status", "list_networks"])
def test_a_network_deleted_after_the_listing_is_left_out(conn, method):
    drv = defined(conn, DeleteAfterListing,
                  lambda: remove(conn, NAMES[1]))
    found = getattr(drv, method)("pcipt-")
    assert sorted(found) == [NAMES[0], NAMES[2]]
    # It was listed, then deleted, for real.
    assert sorted(n.name() for n in conn.listAllNetworks(0)) == \
        [NAMES[0], NAMES[2]]
    drv.close()


def test_any_other_error_of_an_inspection_still_fails(conn):
    drv = defined(conn, FailingInspection, NAMES[1])
    with pytest.raises(exception.NetworkOperationFailed,
                       match=r"inspect network pcipt-.*internal error"):
        drv.network_status("pcipt-")
    drv.close()


def test_a_network_deleted_while_it_is_rewritten_is_defined_anew(conn):
    drv = defined(conn, DeleteAfterListing, None)

    class DeleteAfterLookup(LibvirtMacvtapDriver):
        def _lookup(self, conn_, name):
            net = super()._lookup(conn_, name)
            remove(conn_, name)
            return net

    other = DeleteAfterLookup(make_conf(conn.getURI()), connection=conn)
    assert other.ensure_network(NetworkSpec(NAMES[0], "ens1f0v9")) is True
    assert drv.list_networks(NAMES[0]) == {
        NAMES[0]: NetworkSpec(NAMES[0], "ens1f0v9")}
    assert other.delete_network(NAMES[2]) is True
    assert NAMES[2] not in drv.list_networks("pcipt-")
    drv.close()
    other.close()


LAYOUT = st.HostLayout((st.PfLayout(
    "intel-x710", "0000:3b:00.0", numvfs=2, netdev="ens1f0"),))
SPECS = ('{"vendor_id": "8086", "physical_network": "physnet1"}',)
FLAVORS = ('{"name": "net1", "physical_network": "physnet1"}',)


def test_doctor_beside_a_release_between_listing_and_inspection(tmp_path):
    with AgentHost(tmp_path / "h", LAYOUT, device_specs=SPECS,
                   flavors=FLAVORS) as host:
        nova = host.new_agent()
        inst, kept = new_uuid(), new_uuid()
        for uuid in (inst, kept):
            nova.claim(uuid, [PortRequest(0, flavor="net1")])
            nova.plug(uuid)
        # doctor, as the CLI runs it: an agent of its own on the same
        # ledger and libvirt.  The other agent releases the instance
        # right after doctor's listing.
        doctor = host.new_agent(DeleteAfterListing(
            host.conf, host.conn, lambda: nova.release(inst)),
            start=False)
        report = doctor.doctor(fix=True)
        assert nova.allocations(inst) == []
        # Seen plugged, its network then gone: looked at again before
        # any repair, and left saying why.
        (missing,) = report.findings
        assert missing.kind is FindingKind.MISSING_NETWORK
        assert missing.left == "its port was released meanwhile"
        assert [n.name() for n in host.conn.listAllNetworks(0)] == [
            f"pcipt-{kept}-0"]
        assert doctor.doctor(fix=True).findings == ()
