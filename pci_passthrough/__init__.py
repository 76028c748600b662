"""SR-IOV network passthrough for nova-compute.

Special-attribute PCI flavors, crash-safe device claims, and per-instance
single-interface macvtap networks that let a guest live-migrate to a host
with other VFs without touching its domain XML.
"""
