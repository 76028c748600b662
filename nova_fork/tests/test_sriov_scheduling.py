"""The scheduler places the library's ports through Placement.

A macvtap port whose PCI flavor names its resource class gets a request
group of its own (one unit of the class, the flavor's required traits,
the marker traits of the special attributes it does not name forbidden):
the scheduler allocates its VF on one of the library's PF providers,
nova writes that provider in the port's PCI request (``rp_uuids``), and
the plugin's claim takes a VF of that provider.  A host that cannot
serve the port is never chosen, so no claim is refused and nothing is
rescheduled: every test here allows one attempt only.

Every VF here has the class CUSTOM_MACVTAP_VF; compute1's first two VFs
are of group grp1 (a special attribute), so its PF's VFs are on two
providers.  compute1 has 4 VFs, compute2 2 (test_sriov_plugin.LAYOUTS).
"""

from nova import context as nova_context
from nova import objects
from nova.tests.functional.libvirt import (
    test_sriov_macvtap,
    test_sriov_plugin,
)

RC = "CUSTOM_MACVTAP_VF"
PHYSNET = test_sriov_plugin.PHYSNET
GROUPED = ("0000:5e:01.0", "0000:5e:01.1")
UNGROUPED = {"compute1": {"0000:5e:01.2", "0000:5e:01.3"},
             "compute2": {"0000:3b:02.0", "0000:3b:02.1"}}


class SchedulingTest(test_sriov_macvtap._MacvtapPortsBase):

    def setUp(self):
        super().setUp()
        self.flags(
            device_spec=[
                *(f'{{"address": "{a}", "physical_network": "{PHYSNET}", '
                  f'"group": "grp1", "resource_class": "{RC}"}}'
                  for a in GROUPED),
                f'{{"vendor_id": "8086", "physical_network": "{PHYSNET}", '
                f'"resource_class": "{RC}"}}'],
            flavor=[
                f'{{"name": "placed", "physical_network": "{PHYSNET}", '
                f'"resource_class": "{RC}"}}',
                f'{{"name": "grp1", "physical_network": "{PHYSNET}", '
                f'"group": "grp1", "resource_class": "{RC}"}}'],
            physnet_flavors={PHYSNET: "placed"},
            group="pci_passthrough")
        # A host the scheduler chose must serve the ports: no second try.
        self.flags(max_attempts=1, group="scheduler")
        self.ctxt = nova_context.get_admin_context()

    def boot_one(self, flavor_id=None, expected_state="ACTIVE"):
        return self._create_server(
            flavor_id=flavor_id, networks=[{"port": self.new_port()}],
            expected_state=expected_state)

    def placed_on(self, server):
        """The providers nova wrote in the server's port requests."""
        requests = objects.InstancePCIRequests.get_by_instance_uuid(
            self.ctxt, server["id"]).requests
        return [r.spec[0].get("rp_uuids") for r in requests]

    def provider_of(self, hostname, address):
        """The UUID of the library's provider holding a VF."""
        name = self.agent(hostname).provider_tree(
            hostname).provider_of()[address].name
        (uuid,) = [rp["uuid"] for rp in self._get_all_providers()
                   if rp["name"] == name]
        return uuid

    def assert_placed(self, server):
        """The server's one port holds a VF of the provider the
        scheduler allocated its unit on, and Placement holds just that
        unit on the library's providers."""
        host = server["OS-EXT-SRV-ATTR:host"]
        (claim,) = self.agent(host).allocations(server["id"])
        rp = self.provider_of(host, claim.address)
        self.assertEqual([rp], self.placed_on(server))
        names = {p.name for h in self.computes
                 for p in self.agent(h).provider_tree(h).providers}
        ours = {rp["uuid"] for rp in self._get_all_providers()
                if rp["name"] in names}
        self.assertEqual(
            {rp: {RC: 1}},
            {uuid: alloc["resources"] for uuid, alloc in
             self._get_allocations_by_server_uuid(server["id"]).items()
             if uuid in ours})
        return host, claim.address

    def test_ports_go_only_where_a_vf_may_serve_them(self):
        self.start_compute("compute1")
        self.start_compute("compute2")

        taken = {}
        for _ in range(4):
            host, vf = self.assert_placed(self.boot_one())
            taken.setdefault(host, set()).add(vf)
        # Every VF outside the group, and none of it: the scheduler
        # never sent a port to a host whose free VFs are all grouped.
        self.assertEqual(UNGROUPED, taken)

        # None is left: Placement has no candidate, nothing is claimed.
        server = self.boot_one(expected_state="ERROR")
        self.assertIn("No valid host", server["fault"]["message"])
        self.assertEqual(
            {a: "available" for a in GROUPED},
            {a: s for a, s in self.agent("compute1").device_states().items()
             if a in GROUPED})

        # A nova flavor naming the grouped PCI flavor gets a grouped VF.
        flavor = self._create_flavor(extra_spec={
            f"pci_passthrough_port:flavor:{PHYSNET}": "grp1"})
        host, vf = self.assert_placed(self.boot_one(flavor_id=flavor))
        self.assertEqual("compute1", host)
        self.assertIn(vf, GROUPED)

    def test_a_forbidden_trait_no_provider_has_is_known_to_placement(self):
        # compute2 has no grouped VF: no provider carries the group's
        # marker trait, which every port not naming the group forbids.
        # The compute made it known to Placement as it started.
        self.start_compute("compute2")

        host, vf = self.assert_placed(self.boot_one())

        self.assertEqual("compute2", host)
        self.assertIn(vf, UNGROUPED["compute2"])

    def test_a_live_migration_is_placed_on_the_destination(self):
        self.start_compute("compute1")
        self.start_compute("compute2")
        server = self._create_server(
            host="compute1", networks=[{"port": self.new_port()}])
        self.assert_placed(server)

        server = self._live_migrate(server, "completed")

        host, vf = self.assert_placed(server)
        self.assertEqual("compute2", host)
        self.assertEqual([], self.agent("compute1").allocations())
        self.assertEqual(vf, self.profile(
            self.agent("compute2").allocations(server["id"])[0].port_id
        )["pci_slot"])

    def test_a_resize_on_the_same_host_keeps_the_port_placed(self):
        # The port keeps its VF: the scheduler is not asked for it, the
        # resize claim adds its unit on its VF's provider (while the
        # resize waits, the migration holds one too: a spare VF is
        # needed there, as nova needs one for its own VFs); confirmed or
        # reverted, the request and the allocation still name it.
        self.flags(allow_resize_to_same_host=True)
        self.start_compute("compute1")
        for finish in (self._confirm_resize, self._revert_resize):
            server = self.boot_one()
            placed = self.assert_placed(server)
            server = finish(self.resize(server, finish.__name__))
            self.assertEqual(placed, self.assert_placed(server))
            self.assertEqual((), self.agent("compute1").doctor().findings)
            self._delete_server(server)
