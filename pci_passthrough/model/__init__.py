"""The vocabulary every room shares, below all of them: PCI addresses,
device records, a device's attributes, claims and port states, netdev
and instance names, and the Placement names (classes, traits, provider
names) that device_spec, flavors, the matcher and the Placement adapter
all speak.  Nothing here does I/O.
"""
