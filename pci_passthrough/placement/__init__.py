"""Reporting SR-IOV VFs to OpenStack Placement: the adapter.

- :mod:`.tree`: the host's provider tree, a pure translation; the
  inventory comparison.
- :mod:`.requests`: a flavor as GET /allocation_candidates queries.
- :mod:`.sync`: compare-before-write reporting and allocation healing.
- :mod:`.provider_tree`: the same through nova's ProviderTree.
- :mod:`.allocation`: the VFs an allocation lets a claim take.
- :mod:`.names_taken`: a provider name another tree holds.
- :mod:`.host`: one host's view (scan, settings, ledger) for the CLI.
- :mod:`.client`, :mod:`.conf`: HTTP through keystoneauth1, bounded
  (:mod:`._exchange`), configured by a ``[placement]`` group as nova's
  own.

The names Placement speaks live below this room
(:mod:`pci_passthrough.model.placement_names`); doctor's audit of
Placement lives in :mod:`pci_passthrough.doctor`.
"""
