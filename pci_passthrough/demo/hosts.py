"""Two small simulated hosts for the demo, as sysfs tree layouts.

Each has an Intel X710 and a Mellanox ConnectX-6 Dx (switchdev), a few VFs
on each, and one VF bound to vfio-pci (it has no netdev and so cannot
back a macvtap interface). Host B has its NICs in other slots with other
netdev names, as a second host of a cloud would.
"""

from pci_passthrough.fixtures.sysfs_tree import HostLayout, PfLayout

DEMO_HOST_A = HostLayout(pfs=(
    PfLayout("intel-x710", "0000:3b:00.0", numvfs=4, numa_node=0,
             netdev="ens1f0", vf_drivers={3: "vfio-pci"}),
    PfLayout("mellanox-cx6dx", "0000:5e:00.0", numvfs=3, numa_node=1,
             netdev="ens2f0np0", switchdev=True),
))

DEMO_HOST_B = HostLayout(pfs=(
    PfLayout("intel-x710", "0000:af:00.0", numvfs=4, numa_node=1,
             netdev="ens5f0", vf_drivers={0: "vfio-pci"}),
    PfLayout("mellanox-cx6dx", "0000:d8:00.0", numvfs=3, numa_node=1,
             netdev="ens6f0np0", switchdev=True),
))

# What the demo's operator allows: the X710 VFs for physnet1, and the
# ConnectX-6 Dx VFs for physnet2 in the special group grp1.
DEMO_DEVICE_SPECS = (
    '{"vendor_id": "8086", "product_id": "154c", '
    '"physical_network": "physnet1"}',
    '{"vendor_id": "15b3", "product_id": "101e", '
    '"physical_network": "physnet2", "group": "grp1"}',
)

# The flavors: net1 for the X710 VFs; mlx asks for Mellanox VFs without
# naming group, so it never gets the grp1 ones; grp1 names the special
# group, the only way to reach them.
DEMO_FLAVORS = (
    '{"name": "net1", "physical_network": "physnet1"}',
    '{"name": "mlx", "vendor_id": "15b3"}',
    '{"name": "grp1", "vendor_id": "15b3", "group": "grp1"}',
)
