"""Macvtap ports served by the library, through nova's own API.

nova-api makes a PCI request for each macvtap port, as for any SR-IOV
port, and the fork tags it as the plugin's: nova's PCI tracker and the
scheduler's PCI filter pass it over, and the resource tracker's claim
hands it to the plugin, which claims a VF of its host (the library's
ledger) or refuses the host, and nova reschedules.  The Neutron binding
profile of each port is the library's VF; the guest's interface is
``type='network'`` on the port's own libvirt network, which the plugin
defines before the guest starts, holding the VF's netdev and the VLAN
Neutron bound the port with.  Deleting the server frees everything.

The computes have no PCI device of nova's: every VF here is the
library's (``[pci] device_spec`` is empty).
"""

import copy
import uuid
from unittest import mock

import fixtures
from lxml import etree
from nova import context as nova_context
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.api import client
from nova.tests.functional.libvirt import (
    test_pci_sriov_servers,
    test_sriov_plugin,
)

PORTS_VLAN = 100


class _MacvtapPortsBase(
        test_sriov_plugin.SriovPluginTestBase,
        test_pci_sriov_servers._PCIServersWithMigrationTestBase):
    ADMIN_API = True
    microversion = "latest"
    #: No PCI device is nova's.
    PCI_DEVICE_SPEC = []
    PCI_ALIAS = []

    def setUp(self):
        super().setUp()
        # The fixture's macvtap ports are on network_2 (physnet2, VLAN
        # 100), which the fixture does not hold by default.
        neutron = self.neutron
        neutron._networks[neutron.network_2["id"]] = neutron.network_2
        neutron._subnets[neutron.subnet_2["id"]] = neutron.subnet_2
        for port in (neutron.macvtap_port, neutron.macvtap_port2):
            neutron._ports[port["id"]] = copy.deepcopy(port)
        # fakelibvirt reads the source of an interface attached to a
        # running domain as a bridge's only, though it reads a network's
        # when a domain is defined: the harness is extended to read it on
        # attach too, as libvirt does.
        parse_nic_info = fakelibvirt._parse_nic_info

        def parse_attached_nic(element):
            info = parse_nic_info(element)
            source = element.find("./source")
            if info["type"] == "network" and source is not None:
                info["source"] = source.get("network")
            return info

        self.useFixture(fixtures.MonkeyPatch(
            "nova.tests.fixtures.libvirt._parse_nic_info",
            parse_attached_nic))

    def new_port(self):
        """Another macvtap port of network_2, as Neutron would make it."""
        port = copy.deepcopy(self.neutron.macvtap_port)
        port["id"] = str(uuid.uuid4())
        number = len(self.neutron._ports)
        port["mac_address"] = f"52:54:00:1e:{number // 256:02x}:" \
                              f"{number % 256:02x}"
        port["fixed_ips"] = [dict(port["fixed_ips"][0],
                                  ip_address=f"192.168.13.{10 + number}")]
        self.neutron._ports[port["id"]] = port
        return port["id"]


    def boot(self, ports, expected_state="ACTIVE"):
        return self._create_server(
            networks=[{"port": p} for p in ports],
            expected_state=expected_state)

    def resize(self, server, flavor_name):
        """nova's resize to a new flavor.  fakelibvirt's guests have no
        disk to move: the driver's migrate_disk_and_power_off is mocked,
        as nova's own resize tests in test_pci_sriov_servers mock it."""
        with mock.patch("nova.virt.libvirt.driver.LibvirtDriver"
                        ".migrate_disk_and_power_off", return_value="{}"):
            return self._resize_server(
                server, self._create_flavor(name=flavor_name))

    def domain_interfaces(self, hostname, server):
        """The guest's interfaces as its domain XML has them: (type,
        source network, MAC)."""
        conn = self.computes[hostname].driver._host.get_connection()
        dom = conn.lookupByUUIDString(server["id"])
        root = etree.fromstring(dom.XMLDesc(0))
        return [(i.get("type"), i.find("source").get("network"),
                 i.find("mac").get("address"))
                for i in root.findall("devices/interface")]

    def networks(self, hostname):
        """The library's networks on the host's libvirt: name -> (netdev,
        VLAN).  Read through the agent's own connection: a test driver
        URI naming a file gives each connection a state of its own."""
        specs = self.agent(hostname).network_driver.list_networks("pcipt-")
        return {name: (spec.netdev, spec.vlan)
                for name, spec in specs.items()}

    def vendor_info(self, hostname, address):
        """"vendor:product" of a device, read from the host's sysfs
        tree."""
        path = self.trees[hostname].devices[address].path
        return ":".join(
            (path / name).read_text().strip().removeprefix("0x")
            for name in ("vendor", "device"))

    def profile(self, port_id):
        return self.neutron.show_port(port_id)["port"]["binding:profile"]


    def our_providers(self):
        """The library's providers in Placement: name -> (UUID, resource
        class)."""
        found = {}
        for rp in self._get_all_providers():
            if rp["name"].endswith("_pcipt"):
                (rc,) = self._get_provider_inventory(rp["uuid"])
                found[rp["name"]] = (rp["uuid"], rc)
        return found

    def placement_units(self, server):
        """The server's allocation on the library's providers: provider
        name -> {resource class: units}."""
        names = {uuid: name for name, (uuid, _) in
                 self.our_providers().items()}
        return {names[rp]: alloc["resources"] for rp, alloc in
                self._get_allocations_by_server_uuid(server["id"]).items()
                if rp in names}

    def ledger_units(self, hostname, server):
        """The same as the host's ledger has it: one unit per claimed VF
        on its PF's provider (read from the host's sysfs tree)."""
        providers = self.our_providers()
        units = {}
        for claim in self.agent(hostname).allocations(server["id"]):
            pf = self.trees[hostname].devices[claim.address].parent_addr
            name = f"{hostname}_{pf.upper()}_pcipt"
            rc = providers[name][1]
            held = units.setdefault(name, {})
            held[rc] = held.get(rc, 0) + 1
        return units

    def assert_placement_is_the_ledger(self, hostname, server, count):
        units = self.ledger_units(hostname, server)
        self.assertEqual(count, sum(sum(u.values()) for u in units.values()))
        self.assertEqual(units, self.placement_units(server))
        for name, (rp, rc) in self.our_providers().items():
            usage = self._get_provider_usages(rp).get(rc, 0)
            self.assertEqual(
                sum(u.get(rc, 0) for n, u in units.items() if n == name),
                usage, name)


class MacvtapPortsTest(_MacvtapPortsBase):

    def test_boot_with_two_ports_on_the_librarys_vfs(self):
        self.start_compute("compute1")
        agent = self.agent("compute1")
        ports = [self.neutron.macvtap_port["id"],
                 self.neutron.macvtap_port2["id"]]

        server = self.boot(ports)

        claims = {c.port_id: c for c in agent.allocations(server["id"])}
        self.assertEqual(set(ports), set(claims))
        vfs = self.trees["compute1"].devices
        for port_id in ports:
            claim = claims[port_id]
            port = self.neutron.show_port(port_id)["port"]
            self.assertEqual("plugged", claim.state)
            self.assertEqual(port["mac_address"], claim.mac)
            self.assertEqual(PORTS_VLAN, claim.vlan)
            # Neutron's binding names the VF the library claimed.
            self.assertEqual({
                "pci_slot": claim.address,
                "pci_vendor_info": self.vendor_info("compute1",
                                                    claim.address),
                "physical_network": test_sriov_plugin.PHYSNET,
                "pf_mac_address": self.agent("compute1").devices()[
                    claim.parent_addr].mac,
                "vf_num": vfs[claim.address].vf_index,
            }, self.profile(port_id))
            self.assertEqual("compute1", port["binding:host_id"])
        # The guest's interfaces are on the ports' own networks, each
        # holding its VF's netdev and the port's VLAN.
        self.assertEqual(
            sorted(("network", claims[p].network,
                    self.neutron.show_port(p)["port"]["mac_address"])
                   for p in ports),
            sorted(self.domain_interfaces("compute1", server)))
        self.assertEqual(
            {claims[p].network: (vfs[claims[p].address].netdev, PORTS_VLAN)
             for p in ports},
            self.networks("compute1"))
        self.assertEqual((), agent.doctor().findings)
        self.assert_placement_is_the_ledger("compute1", server, 2)

    def boot_the_fixtures_two_ports_on_compute1(self):
        self.start_compute("compute1")
        return self.agent("compute1"), self.boot(
            [self.neutron.macvtap_port["id"],
             self.neutron.macvtap_port2["id"]])

    def test_hard_reboot_keeps_the_claims_and_networks(self):
        agent, server = self.boot_the_fixtures_two_ports_on_compute1()
        claims = agent.allocations(server["id"])
        networks = self.networks("compute1")
        interfaces = self.domain_interfaces("compute1", server)

        self._reboot_server(server, hard=True)

        self.assertEqual(claims, agent.allocations(server["id"]))
        self.assertEqual(networks, self.networks("compute1"))
        self.assertEqual(interfaces,
                         self.domain_interfaces("compute1", server))
        self.assert_placement_is_the_ledger("compute1", server, 2)

    def test_delete_leaves_no_network_and_no_claim(self):
        agent, server = self.boot_the_fixtures_two_ports_on_compute1()
        self.assertEqual(2, len(self.networks("compute1")))

        self.assert_placement_is_the_ledger("compute1", server, 2)

        self._delete_server(server)

        self.assertEqual([], agent.allocations())
        self.assertEqual({}, self.networks("compute1"))
        self.assertEqual({}, self._get_allocations_by_server_uuid(
            server["id"]))
        for rp, rc in self.our_providers().values():
            self.assertEqual(0, self._get_provider_usages(rp)[rc])
        self.assertEqual(
            {address: "available"
             for address in self.trees["compute1"].devices},
            agent.device_states())
        self.assertEqual((), agent.doctor().findings)

    def test_a_restart_heals_units_a_crash_kept_from_placement(self):
        # A crash between the plugin's claim and nova's write of the VFs'
        # units to Placement leaves Placement short of the ledger: that
        # state is made here by taking the units away again.
        agent, server = self.boot_the_fixtures_two_ports_on_compute1()
        compute = self.computes["compute1"]
        compute.manager.reportclient.remove_resources_from_instance_allocation(
            nova_context.get_admin_context(), server["id"],
            {rp: {"resources": units} for rp, units in
             agent.placement_resources(server["id"]).items()})
        self.assertEqual({}, self.placement_units(server))

        self.restart_compute_service("compute1")

        self.assert_placement_is_the_ledger("compute1", server, 2)

    def test_shelve_offload_frees_and_unshelve_claims_anew(self):
        self.start_compute("compute1")
        agent = self.agent("compute1")
        ports = [self.new_port(), self.new_port()]
        server = self.boot(ports)

        server = self._shelve_server(server, "SHELVED_OFFLOADED")

        self.assertEqual([], agent.allocations())
        self.assertEqual({}, self.networks("compute1"))
        self.assertEqual({}, self.placement_units(server))

        server = self._unshelve_server(server)

        claims = {c.port_id: c for c in agent.allocations(server["id"])}
        self.assertEqual(set(ports), set(claims))
        for port_id, claim in claims.items():
            self.assertEqual("plugged", claim.state)
            self.assertEqual(claim.address,
                             self.profile(port_id)["pci_slot"])
        self.assertEqual({c.network for c in claims.values()},
                         set(self.networks("compute1")))
        self.assert_placement_is_the_ledger("compute1", server, 2)

    def test_a_host_without_enough_vfs_is_refused_with_nothing_left(self):
        # compute2 has 2 VFs: a server with 3 ports cannot land there.
        self.start_compute("compute2")
        agent = self.agent("compute2")
        ports = [self.new_port() for _ in range(3)]

        server = self.boot(ports, expected_state="ERROR")

        self.assertIn("fault", server)
        self.assertEqual([], agent.allocations())
        self.assertEqual({}, self.networks("compute2"))
        for port_id in ports:
            self.assertNotIn("pci_slot", self.profile(port_id))
        # Two ports still fit.
        server = self.boot(ports[:2])
        self.assertEqual(2, len(agent.allocations(server["id"])))

    def test_the_periodic_resource_update_rescans_the_host(self):
        # nova's update_available_resource lets the plugin rescan: a PF
        # that loses carrier takes its VFs out of service, and gives them
        # back when it recovers, without a restart.
        self.start_compute("compute1")
        agent = self.agent("compute1")
        pf = self.trees["compute1"].devices["0000:5e:00.0"]
        operstate = pf.path / "net" / pf.netdev / "operstate"

        operstate.write_text("down\n")
        self._run_periodics()

        self.assertEqual(["0000:5e:00.0"], list(agent.unhealthy_pfs()))
        self.boot([self.new_port()], expected_state="ERROR")
        self.assertEqual([], agent.allocations())

        operstate.write_text("up\n")
        self._run_periodics()

        self.assertEqual({}, agent.unhealthy_pfs())
        server = self.boot([self.new_port()])
        self.assertEqual(1, len(agent.allocations(server["id"])))

    def test_novas_pci_tracker_holds_none_of_them(self):
        self.start_compute(
            "compute1", pci_info=fakelibvirt.HostPCIDevicesInfo(num_pci=0))
        server = self.boot([self.neutron.macvtap_port["id"]])
        self.assertEqual(1, len(self.agent("compute1").allocations(
            server["id"])))
        self.assertPCIDeviceCounts("compute1", total=0, free=0)


class SpecialAttributeTest(_MacvtapPortsBase):
    """A VF of a group goes only to a port whose PCI flavor names the
    group: compute1's first two VFs are tagged group=grp1."""

    GROUPED = ("0000:5e:01.0", "0000:5e:01.1")

    def setUp(self):
        super().setUp()
        physnet = test_sriov_plugin.PHYSNET
        self.flags(
            device_spec=[
                *(f'{{"address": "{a}", "physical_network": "{physnet}", '
                  f'"group": "grp1"}}' for a in self.GROUPED),
                test_sriov_plugin.DEVICE_SPEC],
            flavor=[test_sriov_plugin.FLAVOR,
                    f'{{"name": "grp1", "physical_network": "{physnet}", '
                    f'"group": "grp1"}}'],
            group="pci_passthrough")

    def boot_one(self, flavor_id=None, expected_state="ACTIVE"):
        return self._create_server(
            flavor_id=flavor_id, networks=[{"port": self.new_port()}],
            expected_state=expected_state)

    def vf_of(self, server):
        (claim,) = self.agent("compute1").allocations(server["id"])
        return claim.address

    def test_a_flavor_not_naming_the_group_never_gets_its_vfs(self):
        self.start_compute("compute1")
        ungrouped = {self.vf_of(self.boot_one()) for _ in range(2)}
        self.assertEqual({"0000:5e:01.2", "0000:5e:01.3"}, ungrouped)

        # Two VFs are free, both grouped: a port that does not name the
        # group is refused.
        self.boot_one(expected_state="ERROR")
        self.assertEqual(
            {a: "available" for a in self.GROUPED},
            {a: s for a, s in self.agent("compute1").device_states().items()
             if a in self.GROUPED})

        # A nova flavor naming the grouped PCI flavor for its ports on
        # the physical network gets one.
        flavor = self._create_flavor(extra_spec={
            f"pci_passthrough_port:flavor:{test_sriov_plugin.PHYSNET}":
                "grp1"})
        server = self.boot_one(flavor_id=flavor)
        self.assertIn(self.vf_of(server), self.GROUPED)
        self.assertEqual(
            self.vf_of(server),
            self.neutron.show_port(
                self.agent("compute1").allocations(server["id"])[0].port_id
            )["port"]["binding:profile"]["pci_slot"])


class LiveMigrationTest(_MacvtapPortsBase):
    """A live migration of a server with the library's ports: the
    destination claims VFs of its own in the source's slots and defines
    networks of the same names, so the domain XML moves unchanged; the
    ports are bound to the destination's VFs; the source frees its own
    once the guest left.  compute1 has 4 VFs, compute2 2."""

    def setUp(self):
        super().setUp()
        self.start_compute("compute1")
        self.start_compute("compute2")

    def boot_on_compute1(self, ports):
        return self._create_server(
            host="compute1", networks=[{"port": p} for p in ports])

    def state(self, hostname, server):
        """What a host holds for the server: {port: (slot, network,
        VF, state)}, and its networks."""
        claims = {c.port_id: (c.port_index, c.network, c.address, c.state)
                  for c in self.agent(hostname).allocations(server["id"])}
        return claims, self.networks(hostname)

    def interfaces_xml(self, hostname, server):
        conn = self.computes[hostname].driver._host.get_connection()
        root = etree.fromstring(
            conn.lookupByUUIDString(server["id"]).XMLDesc(0))
        return [etree.tostring(i) for i in root.findall("devices/interface")]

    def assert_untouched(self, server, before, xml, profiles):
        self.assertEqual("compute1", server["OS-EXT-SRV-ATTR:host"])
        self.assert_placement_is_the_ledger(
            "compute1", server, len(before[0]))
        self.assertEqual(before, self.state("compute1", server))
        self.assertEqual(xml, self.interfaces_xml("compute1", server))
        self.assertEqual(profiles, {p: self.profile(p) for p in profiles})
        self.assertEqual([], self.agent("compute2").allocations())
        self.assertEqual({}, self.networks("compute2"))

    def test_a_live_migration_moves_the_ports_to_the_destinations_vfs(self):
        ports = [self.new_port(), self.new_port()]
        server = self.boot_on_compute1(ports)
        (source, _) = self.state("compute1", server)
        xml = self.interfaces_xml("compute1", server)

        server = self._live_migrate(server, "completed")

        self.assertEqual("compute2", server["OS-EXT-SRV-ATTR:host"])
        claims, networks = self.state("compute2", server)
        vfs = self.trees["compute2"].devices
        self.assertEqual(set(ports), set(claims))
        for port_id in ports:
            slot, network, vf, state = claims[port_id]
            # The source's slot and network name, the destination's VF.
            self.assertEqual(source[port_id][:2], (slot, network))
            self.assertIn(vf, vfs)
            self.assertEqual("plugged", state)
            self.assertEqual((vfs[vf].netdev, PORTS_VLAN), networks[network])
            self.assertEqual(vf, self.profile(port_id)["pci_slot"])
            self.assertEqual(
                "compute2",
                self.neutron.show_port(port_id)["port"]["binding:host_id"])
        # The guest's interfaces are those it had on the source.
        self.assertEqual(xml, self.interfaces_xml("compute2", server))
        self.assert_placement_is_the_ledger("compute2", server, 2)
        # The source let go of everything.
        self.assertEqual([], self.agent("compute1").allocations())
        self.assertEqual({}, self.networks("compute1"))
        self.assertEqual((), self.agent("compute1").doctor().findings)
        self.assertEqual((), self.agent("compute2").doctor().findings)

    def test_a_migration_failing_in_the_hypervisor_rolls_both_back(self):
        ports = [self.new_port(), self.new_port()]
        server = self.boot_on_compute1(ports)
        before = self.state("compute1", server)
        xml = self.interfaces_xml("compute1", server)
        profiles = {p: self.profile(p) for p in ports}

        def failing_migration(domain, destination, params, flags):
            # The destination's guest appears, then the job fails.
            self.computes["compute2"].driver._host.get_connection(
            ).createXML(params["destination_xml"], "flags")
            conn = self.computes["compute1"].driver._host.get_connection()
            conn.lookupByUUIDString(server["id"]).fail_job()

        with mock.patch("nova.tests.fixtures.libvirt.Domain.migrateToURI3",
                        failing_migration):
            server = self._live_migrate(
                server, migration_expected_state="failed")
            self.notifier.wait_for_versioned_notifications(
                "instance.live_migration_rollback_dest.end")

        self.assert_untouched(server, before, xml, profiles)
        self.assertEqual((), self.agent("compute1").doctor().findings)

    def test_a_destination_without_enough_vfs_is_refused(self):
        ports = [self.new_port() for _ in range(3)]
        server = self.boot_on_compute1(ports)
        before = self.state("compute1", server)
        xml = self.interfaces_xml("compute1", server)
        profiles = {p: self.profile(p) for p in ports}

        exc = self.assertRaises(client.OpenStackApiException,
                                self._live_migrate, server, "completed")

        self.assertIn("NoValidHost", str(exc))
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assert_untouched(server, before, xml, profiles)

    def test_a_cold_migration_is_refused_with_everything_kept(self):
        # The library's ports move by live migration only: a resize or
        # cold migration keeps such a server on its host (here, where a
        # resize to the same host is not allowed, nowhere).
        server = self.boot_on_compute1([self.new_port()])
        before = self.state("compute1", server)
        xml = self.interfaces_xml("compute1", server)
        profiles = {p: self.profile(p) for p in before[0]}

        exc = self.assertRaises(
            client.OpenStackApiException, self.api.post_server_action,
            server["id"], {"migrate": None})

        # nova's answer to NoValidHost here, as for a live migration.
        self.assertEqual(500, exc.response.status_code)
        self.assertIn("NoValidHost", str(exc))
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assert_untouched(server, before, xml, profiles)


class AttachDetachTest(_MacvtapPortsBase):
    """Interface attach and detach of the library's ports: one port's
    VF and network at a time; the others keep theirs."""

    def attach(self, server, port_id):
        self.api.attach_interface(
            server["id"], {"interfaceAttachment": {"port_id": port_id}})
        self.notifier.wait_for_versioned_notifications(
            "instance.interface_attach.end")

    def detach(self, server, port_id):
        self.api.detach_interface(server["id"], port_id)
        self.notifier.wait_for_versioned_notifications(
            "instance.interface_detach.end")

    def held(self, hostname, server):
        return {c.port_id: (c.port_index, c.network, c.address, c.state)
                for c in self.agent(hostname).allocations(server["id"])}

    def test_attach_and_detach_one_port_at_a_time(self):
        self.start_compute("compute1")
        first, second = self.new_port(), self.new_port()
        server = self.boot([first])
        (slot0,) = self.held("compute1", server).values()

        self.attach(server, second)

        held = self.held("compute1", server)
        self.assertEqual(slot0, held[first])
        slot, network, vf, state = held[second]
        self.assertEqual((1, "plugged"), (slot, state))
        self.assertEqual(vf, self.profile(second)["pci_slot"])
        self.assertEqual(
            sorted(("network", held[p][1],
                    self.neutron.show_port(p)["port"]["mac_address"])
                   for p in (first, second)),
            sorted(self.domain_interfaces("compute1", server)))
        self.assertEqual({held[p][1] for p in held},
                         set(self.networks("compute1")))
        self.assert_placement_is_the_ledger("compute1", server, 2)

        self.detach(server, first)

        # The detached port's VF and network are gone; the other port
        # keeps its slot, so its network keeps its name.
        self.assertEqual({second: held[second]},
                         self.held("compute1", server))
        self.assertEqual({network}, set(self.networks("compute1")))
        self.assertEqual(
            [("network", network,
              self.neutron.show_port(second)["port"]["mac_address"])],
            self.domain_interfaces("compute1", server))
        self.assertNotIn("pci_slot", self.profile(first))
        self.assertEqual("available",
                         self.agent("compute1").device_states()[slot0[2]])
        self.assert_placement_is_the_ledger("compute1", server, 1)

        # Attached again, the port takes the free slot.
        self.attach(server, first)
        self.assertEqual(0, self.held("compute1", server)[first][0])
        self.assertEqual((), self.agent("compute1").doctor().findings)

    def test_an_attach_without_a_free_vf_is_refused(self):
        # compute2 has 2 VFs.
        self.start_compute("compute2")
        ports = [self.new_port(), self.new_port()]
        server = self.boot(ports)
        before = self.held("compute2", server)
        networks = self.networks("compute2")
        extra = self.new_port()

        exc = self.assertRaises(client.OpenStackApiException,
                                self.attach, server, extra)

        self.assertEqual(400, exc.response.status_code)
        self.assertIn("Failed to claim PCI device", str(exc))
        self.assertEqual(before, self.held("compute2", server))
        self.assertEqual(networks, self.networks("compute2"))
        self.assertNotIn("pci_slot", self.profile(extra))
        self.assertEqual(
            len(ports), len(self.domain_interfaces("compute2", server)))
        self.assert_placement_is_the_ledger("compute2", server, 2)


class SameHostResizeTest(_MacvtapPortsBase):
    """A resize where a resize to the same host is allowed: the ports
    keep their VFs and networks; while the resize waits for its
    confirmation both the migration's allocation and the instance's new
    one hold the VFs' units (as for every resource of a resize on one
    host); confirmed or reverted, Placement is the ledger again."""

    def setUp(self):
        super().setUp()
        self.flags(allow_resize_to_same_host=True)
        self.start_compute("compute1")

    def boot_and_resize(self, flavor_name):
        server = self.boot([self.new_port(), self.new_port()])
        claims = self.agent("compute1").allocations(server["id"])
        networks = self.networks("compute1")
        server = self.resize(server, flavor_name)
        self.assertEqual("compute1", server["OS-EXT-SRV-ATTR:host"])
        self.assertEqual(claims, self.agent("compute1").allocations(
            server["id"]))
        self.assertEqual(networks, self.networks("compute1"))
        # The instance's new allocation holds the VFs' units too.
        self.assertEqual(self.ledger_units("compute1", server),
                         self.placement_units(server))
        return server, claims

    def test_a_confirmed_or_reverted_resize_keeps_the_vfs_and_units(self):
        for finish in (self._confirm_resize, self._revert_resize):
            server, claims = self.boot_and_resize(finish.__name__)

            server = finish(server)

            self.assertEqual(claims, self.agent("compute1").allocations(
                server["id"]))
            self.assert_placement_is_the_ledger("compute1", server, 2)
            self.assertEqual((), self.agent("compute1").doctor().findings)
            self._delete_server(server)

    def test_a_resize_without_a_spare_vf_is_refused_with_nothing_lost(self):
        # compute1's four VFs are held by two servers: the resize's
        # second unit per port does not fit; the resize fails and the
        # server stays as it was: active, its VFs, its networks and its
        # allocation kept.
        first = self.boot([self.new_port(), self.new_port()])
        server = self.boot([self.new_port(), self.new_port()])
        claims = self.agent("compute1").allocations(server["id"])
        networks = self.networks("compute1")

        exc = self.assertRaises(client.OpenStackApiException, self.resize,
                                server, "bigger")

        self.assertIn("the VFs of the ports could not be allocated in "
                      "Placement", str(exc))
        server = self._wait_for_state_change(server, "ACTIVE")
        self.assertEqual("compute1", server["OS-EXT-SRV-ATTR:host"])
        self.assertEqual(claims, self.agent("compute1").allocations(
            server["id"]))
        self.assertEqual(networks, self.networks("compute1"))
        for each in (first, server):
            self.assertEqual(self.ledger_units("compute1", each),
                             self.placement_units(each))
        # Nothing else holds a unit: the provider's usage is theirs.
        (rp, rc), = self.our_providers().values()
        self.assertEqual({rc: 4}, self._get_provider_usages(rp))
