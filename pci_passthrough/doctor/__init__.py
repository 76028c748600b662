"""doctor: what differs between the ledger and the host (sysfs,
libvirt's networks, the VF netdevs) or Placement, and the repairs of
what is safe and ours.

HostDoctor (host_doctor) composes the host checks (host_checks), the
Placement audit (placement_audit) and the repairs (host_repairs,
placement_repair) into one report (report).  The room is below the
agent: HostAgent passes its parts in (see host_parts).
"""
