"""The pci-passthrough command."""
