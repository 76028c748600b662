"""The host the claims and doctor commands are run against in the unit
tier: an Intel X710 (three VFs, the third bound to vfio-pci) for
physnet1 and a Mellanox CX-6 Dx in switchdev mode (two VFs) for group
grp1, written as a sysfs tree and an operator's config file.

The command opens its own libvirt connection: on test:///default (the
default here) every connection of the process shares one state while
any is open, which the ``libvirt_conn`` fixture of conftest.py holds.
Imported by name by test_cli_claims.py and test_cli_doctor.py."""

import pathlib

from conf_files import write_host_conf

from pci_passthrough.fixtures import sysfs_tree as st

SHARED_URI = "test:///default"
LAYOUT = st.HostLayout((
    st.PfLayout("intel-x710", "0000:3b:00.0", numvfs=3,
                netdev="ens1f0", vf_drivers={2: "vfio-pci"}),
    st.PfLayout("mellanox-cx6dx", "0000:5e:00.0", numvfs=2,
                netdev="ens2f0np0", switchdev=True),
))
DEVICE_SPECS = (
    '{"vendor_id": "8086", "product_id": "154c", '
    '"physical_network": "physnet1"}',
    '{"vendor_id": "15b3", "product_id": "101e", "group": "grp1"}')
FLAVORS = ('{"name": "net1", "physical_network": "physnet1"}',
           '{"name": "grp1", "group": "grp1"}')


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
        flavors=FLAVORS, libvirt_uri=libvirt_uri,
        network_name_prefix=prefix))
