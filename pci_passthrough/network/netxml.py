"""libvirt XML for the per-instance networks, built and parsed with lxml."""

import dataclasses

from lxml import etree

from pci_passthrough.config.opts import MACVTAP_MODES
from pci_passthrough.model.netdev_name import check_netdev
from pci_passthrough.network.base import NetworkSpec


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedNetwork:
    name: str
    mode: str | None
    netdevs: tuple[str, ...]
    vlan: int | None

    def as_spec(self) -> NetworkSpec | None:
        """The NetworkSpec this network matches, if it holds one netdev."""
        if len(self.netdevs) != 1:
            return None
        return NetworkSpec(self.name, self.netdevs[0], self.vlan)


def network_xml(spec: NetworkSpec, mode: str) -> str:
    """``<network>`` holding exactly the spec's netdev in macvtap ``mode``;
    a VLAN goes in the network so it travels with the definition."""
    if mode not in MACVTAP_MODES:
        raise ValueError(f"macvtap mode {mode!r} is not one of "
                         f"{', '.join(MACVTAP_MODES)}")
    check_netdev(spec.netdev)
    net = etree.Element("network")
    etree.SubElement(net, "name").text = spec.name
    forward = etree.SubElement(net, "forward", mode=mode)
    etree.SubElement(forward, "interface", dev=spec.netdev)
    if spec.vlan is not None:
        vlan = etree.SubElement(net, "vlan")
        etree.SubElement(vlan, "tag", id=str(spec.vlan))
    return etree.tostring(net, encoding="unicode")


def parse_network(xml: str) -> ParsedNetwork:
    root = etree.fromstring(xml.encode())
    forward = root.find("forward")
    netdevs = tuple(i.get("dev", "") for i in forward.iterfind(
        "interface")) if forward is not None else ()
    tag = root.find("vlan/tag")
    return ParsedNetwork(
        name=root.findtext("name", ""),
        mode=forward.get("mode") if forward is not None else None,
        netdevs=netdevs,
        vlan=int(tag.get("id", "0")) if tag is not None else None,
    )
