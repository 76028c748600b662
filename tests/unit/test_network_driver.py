"""The network drivers on libvirt's own test driver: XML valid against
libvirt's schemas, idempotent steps, errors, reconnects, entry points."""

import pathlib

import libvirt
import pytest
from lxml import etree
from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.config import opts
from pci_passthrough.fixtures.guest import guest_xml
from pci_passthrough.fixtures.simulated_host import libvirt_test_uri
from pci_passthrough.model.netdev_name import check_netdev
from pci_passthrough.network import load_network_driver
from pci_passthrough.network.base import NetworkSpec
from pci_passthrough.network.libvirt_macvtap import (
    LibvirtMacvtapDriver,
    connection_lost,
)
from pci_passthrough.network.names import network_name, parse_network_name
from pci_passthrough.network.netxml import network_xml
from pci_passthrough.network.noop import NoopDriver

SCHEMAS = pathlib.Path("/usr/share/libvirt/schemas")
UUID = "4f1a2b3c-0000-4000-8000-00000000abcd"
NAME = f"pcipt-{UUID}-0"


def relaxng(name: str) -> etree.RelaxNG:
    if not (SCHEMAS / name).exists():
        pytest.skip(f"libvirt's schema {name} is not installed (libvirt0)")
    return etree.RelaxNG(etree.parse(str(SCHEMAS / name)))


def make_conf(uri: str, mode: str = "passthrough") -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([])
    conf.set_override("libvirt_uri", uri, group="pci_passthrough")
    conf.set_override("macvtap_mode", mode, group="pci_passthrough")
    return conf


@pytest.fixture
def conn(tmp_path):
    connection = libvirt.open(libvirt_test_uri(tmp_path / "host.xml"))
    yield connection
    connection.close()


@pytest.fixture
def driver(conn, tmp_path):
    drv = LibvirtMacvtapDriver(make_conf(conn.getURI()), connection=conn)
    yield drv
    drv.close()


def netdev_of(conn, name):
    xml = etree.fromstring(conn.networkLookupByName(name).XMLDesc(0))
    return [i.get("dev") for i in xml.iterfind("forward/interface")]


@pytest.mark.parametrize("mode", ["passthrough", "bridge", "private",
                                  "vepa"])
@pytest.mark.parametrize("vlan", [None, 100])
def test_network_xml_is_valid_for_libvirt(mode, vlan):
    xml = network_xml(NetworkSpec(NAME, "ens1f0v3", vlan), mode)
    assert relaxng("network.rng").validate(etree.fromstring(xml.encode()))
    parsed = etree.fromstring(xml)
    assert parsed.find("forward").get("mode") == mode
    assert [i.get("dev") for i in parsed.iterfind("forward/interface")] == [
        "ens1f0v3"]
    assert (parsed.find("vlan/tag") is not None) == (vlan is not None)


@pytest.mark.parametrize("mac", [None, "52:54:00:12:34:56"])
def test_interface_xml_is_valid_in_a_domain(driver, mac):
    iface = driver.interface_xml(NAME, mac)
    domain = etree.fromstring(guest_xml("g", [iface]).encode())
    assert relaxng("domain.rng").validate(domain)


@pytest.mark.parametrize("mode", ["passthrough", "bridge", "private",
                                  "vepa"])
def test_ensure_defines_starts_and_autostarts_in_every_mode(conn, mode):
    drv = LibvirtMacvtapDriver(make_conf(conn.getURI(), mode),
                               connection=conn)
    assert drv.ensure_network(NetworkSpec(NAME, "ens1f0v1", 42)) is True
    net = conn.networkLookupByName(NAME)
    assert net.isActive() and net.isPersistent() and net.autostart()
    xml = etree.fromstring(net.XMLDesc(0))
    assert xml.find("forward").get("mode") == mode
    assert xml.find("vlan/tag").get("id") == "42"
    assert drv.ensure_network(NetworkSpec(NAME, "ens1f0v1", 42)) is False


def test_plug_costs_three_libvirt_calls_per_port(driver):
    before = driver.calls
    driver.ensure_network(NetworkSpec(NAME, "ens1f0v1"))
    assert driver.calls - before == 3
    before = driver.calls
    driver.delete_network(NAME)
    assert driver.calls - before == 3


def test_ensure_rewrites_a_network_holding_another_device(driver, conn):
    driver.ensure_network(NetworkSpec(NAME, "ens1f0v1"))
    assert driver.ensure_network(NetworkSpec(NAME, "ens1f0v2")) is True
    assert netdev_of(conn, NAME) == ["ens1f0v2"]
    assert driver.ensure_network(NetworkSpec(NAME, "ens1f0v2", 7)) is True
    assert driver.list_networks("pcipt-") == {
        NAME: NetworkSpec(NAME, "ens1f0v2", 7)}


def test_ensure_restarts_a_stopped_network(driver, conn):
    driver.ensure_network(NetworkSpec(NAME, "ens1f0v1"))
    conn.networkLookupByName(NAME).destroy()
    conn.networkLookupByName(NAME).setAutostart(0)
    assert driver.ensure_network(NetworkSpec(NAME, "ens1f0v1")) is True
    net = conn.networkLookupByName(NAME)
    assert net.isActive() and net.autostart()


def test_delete_is_idempotent_and_handles_stopped_networks(driver, conn):
    driver.ensure_network(NetworkSpec(NAME, "ens1f0v1"))
    conn.networkLookupByName(NAME).destroy()
    assert driver.delete_network(NAME) is True
    assert driver.delete_network(NAME) is False
    with pytest.raises(libvirt.libvirtError):
        conn.networkLookupByName(NAME)


def test_only_prefixed_networks_are_listed_or_touched(driver, conn):
    conn.networkDefineXML(
        "<network><name>operator-net</name><forward mode='bridge'>"
        "<interface dev='eth0'/></forward></network>").create()
    driver.ensure_network(NetworkSpec(NAME, "ens1f0v1"))
    assert set(driver.list_networks("pcipt-")) == {NAME}
    assert conn.networkLookupByName("operator-net").isActive()


def test_two_simulated_hosts_are_independent(tmp_path):
    conn_a = libvirt.open(libvirt_test_uri(tmp_path / "a.xml"))
    conn_b = libvirt.open(libvirt_test_uri(tmp_path / "b.xml"))
    a = LibvirtMacvtapDriver(make_conf(conn_a.getURI()), connection=conn_a)
    b = LibvirtMacvtapDriver(make_conf(conn_b.getURI()), connection=conn_b)
    a.ensure_network(NetworkSpec(NAME, "vfa0"))
    assert b.list_networks("pcipt-") == {}
    b.ensure_network(NetworkSpec(NAME, "vfb3"))
    assert netdev_of(conn_a, NAME) == ["vfa0"]
    assert netdev_of(conn_b, NAME) == ["vfb3"]
    conn_a.close()
    conn_b.close()


def test_a_closed_connection_is_reopened_once(tmp_path):
    # The host process closes the connection it shared between calls, as
    # a restarted daemon does to a client: the driver goes on with one of
    # its own.
    uri = libvirt_test_uri(tmp_path / "host.xml")
    shared = libvirt.open(uri)
    drv = LibvirtMacvtapDriver(make_conf(uri), connection=shared)
    drv.ensure_network(NetworkSpec(NAME, "ens1f0v1"))
    assert netdev_of(shared, NAME) == ["ens1f0v1"]
    shared.close()
    # Each open of a test:///ABS/PATH host starts from the file, so the
    # reopened connection has no network and the step defines it again;
    # the next call keeps that connection and finds it there.
    assert drv.ensure_network(NetworkSpec(NAME, "ens1f0v1")) is True
    assert drv.ensure_network(NetworkSpec(NAME, "ens1f0v1")) is False
    assert set(drv.list_networks("pcipt-")) == {NAME}
    drv.close()


def test_libvirt_errors_carry_libvirts_message(tmp_path):
    drv = LibvirtMacvtapDriver(make_conf("test:///nonexistent/host.xml"))
    with pytest.raises(exception.NetworkOperationFailed) as err:
        drv.ensure_network(NetworkSpec(NAME, "ens1f0v1"))
    assert "test:///nonexistent/host.xml" in str(err.value)
    assert "libvirt error code" in str(err.value)


@pytest.mark.parametrize("netdev", ["", "a" * 16, "bad:name", "a/b",
                                    "sp ace", ".", ".."])
def test_netdev_names_are_checked_before_xml(netdev):
    with pytest.raises(exception.InvalidNetdevName, match="1 to 15"):
        check_netdev(netdev, "0000:3b:02.0")
    with pytest.raises(exception.InvalidNetdevName):
        network_xml(NetworkSpec(NAME, netdev), "passthrough")


def test_an_invalid_mode_in_the_config_file_names_the_option(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text("[pci_passthrough]\nmacvtap_mode = hostdev\n")
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf(["--config-file", str(path)])
    with pytest.raises(ValueError, match=r"macvtap_mode.*Valid values are "
                                         r"\[passthrough, bridge"):
        conf.pci_passthrough.macvtap_mode  # noqa: B018


@pytest.mark.parametrize("uuid,port,error", [
    ("not-a-uuid", 0, exception.InvalidInstanceId),
    (UUID.upper(), 0, exception.InvalidInstanceId),
    (UUID, -1, exception.InvalidPortRequest),
    (UUID, "0", exception.InvalidPortRequest),
])
def test_names_only_from_a_canonical_uuid_and_an_int(uuid, port, error):
    with pytest.raises(error):
        network_name("pcipt-", uuid, port)


def test_names_round_trip():
    assert parse_network_name("pcipt-", network_name("pcipt-", UUID, 12)) \
        == (UUID, 12)
    assert parse_network_name("pcipt-", "pcipt-other") is None
    assert parse_network_name("pcipt-", f"x-{UUID}-0") is None


@pytest.mark.parametrize("name,cls", [("libvirt_macvtap",
                                       LibvirtMacvtapDriver),
                                      ("noop", NoopDriver)])
def test_entry_points_load_by_name(name, cls):
    conf = make_conf("test:///default")
    conf.set_override("network_driver", name, group="pci_passthrough")
    drv = load_network_driver(conf)
    assert type(drv) is cls
    drv.close()


def test_unknown_driver_names_the_installed_ones():
    conf = make_conf("test:///default")
    with pytest.raises(exception.NetworkDriverNotFound,
                       match="installed drivers: libvirt_macvtap, noop"):
        load_network_driver(conf, "ovs")


def test_noop_driver_keeps_networks_per_instance():
    one, two = NoopDriver(), NoopDriver()
    assert one.ensure_network(NetworkSpec(NAME, "vf0")) is True
    assert one.ensure_network(NetworkSpec(NAME, "vf0")) is False
    assert two.list_networks("pcipt-") == {}
    assert one.delete_network(NAME) is True
    assert one.delete_network(NAME) is False


def libvirt_error(code: int, domain: int) -> libvirt.libvirtError:
    # A daemon dying mid-call cannot be produced with the test driver:
    # the error it would raise is built here, with libvirt's own class.
    libvirt.virResetLastError()  # its message would come from there
    err = libvirt.libvirtError("constructed")
    err.err = (code, domain, f"error {code} in domain {domain}", 2, None,
               None, None, -1, -1)
    return err


LOST = [
    (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_REMOTE),
    (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC),
    (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_RPC),
    (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_REMOTE),
    (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_FROM_REMOTE),
    (libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_FROM_NETWORK),
]
NOT_LOST = [
    # An operation failing on the daemon's side: the connection is fine.
    (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_NETWORK),
    (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_NETWORK),
    (libvirt.VIR_ERR_OPERATION_FAILED, libvirt.VIR_FROM_RPC),
    (libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_FROM_REMOTE),
    (libvirt.VIR_ERR_NO_NETWORK, libvirt.VIR_FROM_REMOTE),
]


@pytest.mark.parametrize("code,domain", LOST)
def test_connection_loss_is_code_and_domain_together(code, domain):
    assert connection_lost(libvirt_error(code, domain))


@pytest.mark.parametrize("code,domain", NOT_LOST)
def test_an_operation_error_is_not_a_connection_loss(code, domain):
    assert not connection_lost(libvirt_error(code, domain))


class FaultOnListing:
    """A libvirt connection whose first network listing raises ``error``
    (what a daemon going away mid-call does), the real one otherwise."""

    def __init__(self, conn, error):
        self._conn = conn
        self.error = error

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def listAllNetworks(self, flags):
        error, self.error = self.error, None
        if error is not None:
            raise error
        return self._conn.listAllNetworks(flags)


def uses(drv, conn) -> bool:
    """Does ``drv`` work on ``conn``: is a network it defines there?"""
    drv.ensure_network(NetworkSpec(NAME, "ens1f0v2"))
    try:
        conn.networkLookupByName(NAME)
    except libvirt.libvirtError:
        return False
    return True


@pytest.mark.parametrize("code,domain", LOST + NOT_LOST)
def test_a_borrowed_connection_is_kept_unless_lost_and_never_closed(
        conn, code, domain):
    drv = LibvirtMacvtapDriver(
        make_conf(conn.getURI()),
        connection=FaultOnListing(conn, libvirt_error(code, domain)))
    lost = (code, domain) in LOST
    if lost:
        # Reconnected on its own connection and retried once.
        assert drv.list_networks("pcipt-") == {}
        assert not uses(drv, conn)
    else:
        with pytest.raises(exception.NetworkOperationFailed,
                           match=f"libvirt error code {code}"):
            drv.list_networks("pcipt-")
        assert uses(drv, conn)
    drv.close()
    # The host process's connection is still open and usable.
    assert conn.isAlive() == 1
    conn.networkDefineXML(
        "<network><name>still-mine</name><forward mode='bridge'>"
        "<interface dev='eth0'/></forward></network>")
    assert conn.networkLookupByName("still-mine").name() == "still-mine"


def test_the_process_libvirt_error_handler_is_left_alone(tmp_path):
    seen: list[object] = []
    libvirt.registerErrorHandler(lambda _ctx, err: seen.append(err), None)
    try:
        drv = LibvirtMacvtapDriver(make_conf(libvirt_test_uri(
            tmp_path / "host.xml")))
        # Opens the driver's own connection; the lookup of a missing
        # network is an error libvirt reports to the process's handler.
        assert drv.delete_network(NAME) is False
        drv.ensure_network(NetworkSpec(NAME, "ens1f0v1"))
        drv.close()
        assert seen, "the driver replaced the process's error handler"
        assert any(e[0] == libvirt.VIR_ERR_NO_NETWORK for e in seen)
    finally:
        libvirt.registerErrorHandler(None, None)


@pytest.mark.parametrize("mode,refused", [("passthrough", False),
                                          ("bridge", True),
                                          ("private", True),
                                          ("vepa", True)])
def test_vlan_support_follows_the_forward_mode(conn, mode, refused):
    drv = LibvirtMacvtapDriver(make_conf(conn.getURI(), mode),
                               connection=conn)
    refusal = drv.vlan_refusal()
    assert (refusal is not None) == refused
    if refused:
        assert f"macvtap_mode is {mode}" in refusal
    assert NoopDriver().vlan_refusal() is None


@pytest.mark.parametrize("name", [
    f"pcipt-{UUID}-0-x", f"pcipt-{UUID}-00", f"pcipt-{UUID}-10000",
    f"pcipt-{UUID.upper()}-0", f"pcipt-{UUID}", f"pcipt--{UUID}-0",
    "pcipt-default", "default"])
def test_only_a_whole_name_parses(name):
    assert parse_network_name("pcipt-", name) is None
