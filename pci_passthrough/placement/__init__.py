"""Reporting SR-IOV VFs to OpenStack Placement.

- :mod:`.tree`: the host's provider tree, a pure translation.
- :mod:`.names`: Placement names of classes, traits and providers.
- :mod:`.requests`: a flavor as GET /allocation_candidates queries.
- :mod:`.sync`: compare-before-write reporting and allocation healing.
- :mod:`.names_taken`: a provider name another tree holds.
- :mod:`.client`, :mod:`.conf`: HTTP through keystoneauth1, configured
  by a ``[placement]`` group as nova's own.
"""
