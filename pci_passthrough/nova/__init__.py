"""What a nova-compute fork loads: the plugin its libvirt driver calls.

Nothing in this package imports nova, so the library installs, imports
and is tested without it; nova hands the plugin plain values.
"""
