"""The library's Placement providers beside nova's own PCI reporting.

The driver's update_provider_tree calls the plugin, which puts the
host's PF providers (``<node>_<PF ADDRESS>_pcipt``, the library's owner
trait, no trait of nova's) under the compute node's provider; the
resource tracker then runs nova's PCI-in-Placement translation on the
same tree.  Each compute also has a PCI device of nova's own (a
fakelibvirt device in ``[pci] device_spec``, requested through a
``[pci] alias``), as nova's own PCI tests have.

Both ways ``[pci] report_in_placement`` can be: False, nova refuses to
start on a tree holding a provider with COMPUTE_MANAGED_PCI_DEVICE;
True, it reports its device and deletes such providers it did not make.
A host an earlier release of the library reported, whose providers had
nova's names and that trait, starts all the same: its providers are
renamed through a reshape, every allocation kept.
"""

import copy

from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import (
    test_pci_sriov_servers,
    test_sriov_plugin,
)
from oslo_serialization import jsonutils

from pci_passthrough.model import placement_names as names

NOVA_PCI_TRAIT = "COMPUTE_MANAGED_PCI_DEVICE"
#: fakelibvirt's address of the one plain PCI device of nova's.
NOVA_DEVICE = "0000:81:00.0"
#: The library's PF of compute1 (test_sriov_plugin.LAYOUTS).
OUR_PF = "0000:5E:00.0"


class _CoexistenceTests:
    """The tests, for either value of ``[pci] report_in_placement``."""

    ADMIN_API = True
    microversion = "latest"
    ALIAS_NAME = "a1"
    PCI_DEVICE_SPEC = [jsonutils.dumps({
        "vendor_id": fakelibvirt.PCI_VEND_ID,
        "product_id": fakelibvirt.PCI_PROD_ID})]
    PCI_ALIAS = [jsonutils.dumps({
        "vendor_id": fakelibvirt.PCI_VEND_ID,
        "product_id": fakelibvirt.PCI_PROD_ID,
        "name": ALIAS_NAME})]
    #: [pci] report_in_placement (and the scheduler's pci_in_placement).
    REPORT_IN_PLACEMENT: bool

    def setUp(self):
        super().setUp()
        self.flags(report_in_placement=self.REPORT_IN_PLACEMENT,
                   group="pci")
        self.flags(pci_in_placement=self.REPORT_IN_PLACEMENT,
                   group="filter_scheduler")

    # -- helpers -----------------------------------------------------------

    def start_with_novas_device(self):
        self.start_compute(
            "compute1", pci_info=fakelibvirt.HostPCIDevicesInfo(num_pci=1))

    def boot_with_novas_alias(self):
        flavor = self._create_flavor(extra_spec={
            "pci_passthrough:alias": f"{self.ALIAS_NAME}:1"})
        server = self._create_server(flavor_id=flavor, networks="none")
        self.assertEqual("ACTIVE", server["status"])
        self.assertPCIDeviceCounts("compute1", total=1, free=0)
        return server

    def providers(self):
        """Every child of compute1's provider by name: (uuid, inventory,
        traits)."""
        root = self.compute_rp_uuids["compute1"]
        return {
            rp["name"]: (rp["uuid"],
                         self._get_provider_inventory(rp["uuid"]),
                         set(self._get_provider_traits(rp["uuid"])))
            for rp in self._get_all_rps_in_a_tree(root)
            if rp["uuid"] != root}

    def assert_both_reported(self):
        """Our PF's provider, and nova's device's when it reports it."""
        providers = self.providers()
        ours = f"compute1_{OUR_PF}_pcipt"
        novas = f"compute1_{NOVA_DEVICE}"
        expected = {ours} | ({novas} if self.REPORT_IN_PLACEMENT else set())
        self.assertEqual(expected, set(providers))
        _, inventory, traits = providers[ours]
        self.assertEqual([4], [inv["total"] for inv in inventory.values()])
        self.assertIn(names.OWNER_TRAIT, traits)
        self.assertNotIn(NOVA_PCI_TRAIT, traits)
        self.assertNotIn("OWNER_NOVA", traits)
        if self.REPORT_IN_PLACEMENT:
            _, inventory, traits = providers[novas]
            self.assertEqual({self.PCI_RC}, set(inventory))
            self.assertIn(NOVA_PCI_TRAIT, traits)
            self.assertNotIn(names.OWNER_TRAIT, traits)
        return providers

    def server_allocations(self, server):
        return {rp: alloc["resources"] for rp, alloc in
                self._get_allocations_by_server_uuid(server["id"]).items()}

    def as_formerly_reported(self, ours, server):
        """Give our provider the name and nova's trait an earlier release
        gave it, and the server a unit on it."""
        uuid, inventory, traits = self.providers()[ours]
        former = f"compute1_{OUR_PF}"
        resp = self.placement.put(f"/resource_providers/{uuid}",
                                  {"name": former}, version="1.20")
        self.assertEqual(200, resp.status)
        self._set_provider_traits(uuid, sorted(traits | {NOVA_PCI_TRAIT}))
        body = self.placement.get(f"/allocations/{server['id']}",
                                  version="1.38").body
        allocations = {rp: {"resources": a["resources"]}
                       for rp, a in body["allocations"].items()}
        (rc,) = inventory
        allocations[uuid] = {"resources": {rc: 1}}
        resp = self.placement.put(f"/allocations/{server['id']}", {
            "allocations": allocations,
            "project_id": body["project_id"], "user_id": body["user_id"],
            "consumer_generation": body["consumer_generation"],
            "consumer_type": "INSTANCE"}, version="1.38")
        self.assertEqual(204, resp.status)
        return former, uuid, rc

    # -- tests -------------------------------------------------------------

    def test_both_reported_and_kept_across_a_restart(self):
        self.start_with_novas_device()
        self.assert_both_reported()
        server = self.boot_with_novas_alias()
        allocations = self.server_allocations(server)
        if self.REPORT_IN_PLACEMENT:
            novas = self.providers()[f"compute1_{NOVA_DEVICE}"][0]
            self.assertEqual({self.PCI_RC: 1}, allocations[novas])
        before = self.assert_both_reported()

        self.restart_compute_service("compute1")

        self.assertEqual(before, self.assert_both_reported())
        self.assertEqual(allocations, self.server_allocations(server))
        self.assertPCIDeviceCounts("compute1", total=1, free=0)
        tree = self.agent("compute1").provider_tree("compute1")
        self.assertEqual([f"compute1_{OUR_PF}_pcipt"],
                         [p.name for p in tree.providers])

    def test_former_names_renamed_at_start_keeping_allocations(self):
        self.start_with_novas_device()
        server = self.boot_with_novas_alias()
        ours = f"compute1_{OUR_PF}_pcipt"
        former, former_uuid, rc = self.as_formerly_reported(ours, server)
        held = self.server_allocations(server)
        self.assertEqual({rc: 1}, held[former_uuid])

        # With nova's trait on it, nova-compute would not start (False)
        # or would delete it, allocations and all (True).
        self.restart_compute_service("compute1")

        providers = self.assert_both_reported()
        self.assertNotIn(former, providers)
        new_uuid = providers[ours][0]
        self.assertNotEqual(former_uuid, new_uuid)
        # The server's unit moved to the new provider, the rest as it was.
        held[new_uuid] = held.pop(former_uuid)
        self.assertEqual(held, self.server_allocations(server))
        self.assertEqual(
            {rc: 1}, self._get_provider_usages(new_uuid))

        # Done once: another start finds nothing to move.
        self.restart_compute_service("compute1")
        self.assertEqual(providers, self.assert_both_reported())
        self.assertEqual(held, self.server_allocations(server))

    def test_a_server_with_novas_device_and_our_port_across_a_restart(self):
        self.start_with_novas_device()
        neutron = self.neutron
        neutron._networks[neutron.network_2["id"]] = neutron.network_2
        neutron._subnets[neutron.subnet_2["id"]] = neutron.subnet_2
        port = copy.deepcopy(neutron.macvtap_port)
        neutron._ports[port["id"]] = port
        flavor = self._create_flavor(extra_spec={
            "pci_passthrough:alias": f"{self.ALIAS_NAME}:1"})

        server = self._create_server(flavor_id=flavor,
                                     networks=[{"port": port["id"]}])

        # nova's tracker holds its device, the library its VF.
        self.assertPCIDeviceCounts("compute1", total=1, free=0)
        (claim,) = self.agent("compute1").allocations(server["id"])
        self.assertEqual(port["id"], claim.port_id)
        self.assertEqual(claim.address, neutron.show_port(
            port["id"])["port"]["binding:profile"]["pci_slot"])
        before = self.assert_both_reported()

        self.restart_compute_service("compute1")

        self.assertEqual(before, self.assert_both_reported())
        self.assertPCIDeviceCounts("compute1", total=1, free=0)
        self.assertEqual([claim],
                         self.agent("compute1").allocations(server["id"]))

        self._delete_server(server)
        self.assertPCIDeviceCounts("compute1", total=1, free=1)
        self.assertEqual([], self.agent("compute1").allocations())


class CoexistenceWithoutNovaPciReportingTest(
        _CoexistenceTests, test_sriov_plugin.SriovPluginTestBase,
        test_pci_sriov_servers._PCIServersTestBase):
    REPORT_IN_PLACEMENT = False


class CoexistenceWithNovaPciReportingTest(
        _CoexistenceTests, test_sriov_plugin.SriovPluginTestBase,
        test_pci_sriov_servers._PCIServersTestBase):
    REPORT_IN_PLACEMENT = True
