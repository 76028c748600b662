"""The host the claims and doctor commands are run against in the unit
tier: the standard host (an Intel X710 with three VFs for physnet1, a
Mellanox CX-6 Dx in switchdev mode with two VFs for group grp1) with the
X710's third VF bound to vfio-pci, and device_spec entries that name
the VF product ids, written as a sysfs tree and an operator's config
file.

The command opens its own libvirt connection: on test:///default (the
default here) every connection of the process shares one state while
any is open, which the ``libvirt_conn`` fixture of conftest.py holds.
Imported by name by test_cli_claims.py and test_cli_doctor.py."""

import dataclasses
import pathlib

from conf_files import write_host_conf

from pci_passthrough.fixtures import standard_host as std
from pci_passthrough.fixtures import sysfs_tree as st

SHARED_URI = "test:///default"
LAYOUT = st.HostLayout((
    dataclasses.replace(std.X710, vf_drivers={2: "vfio-pci"}), std.CX6DX))
DEVICE_SPECS = (
    '{"vendor_id": "8086", "product_id": "154c", '
    '"physical_network": "physnet1"}',
    '{"vendor_id": "15b3", "product_id": "101e", "group": "grp1"}')


def write_cli_host(workdir: pathlib.Path, libvirt_uri: str = SHARED_URI,
                   prefix: str = "pcipt-") -> str:
    """Build the host's sysfs tree in ``workdir``/sys and write
    ``workdir``/pci.conf for it (ledger ``workdir``/claims.db, networks
    named ``prefix``...); the config file's path."""
    root = workdir / "sys"
    st.build_tree(root, LAYOUT)
    return str(write_host_conf(
        workdir / "pci.conf", sysfs_root=root,
        state_path=workdir / "claims.db", device_specs=DEVICE_SPECS,
        flavors=std.FLAVORS, libvirt_uri=libvirt_uri,
        network_name_prefix=prefix))
