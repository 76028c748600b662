"""SR-IOV discovery from sysfs: :func:`.sysfs_scan.scan` reads every PF
and VF in one pass, each file and link as hostile input
(:mod:`.sysfs_files`); :mod:`.health` says which PFs cannot carry
traffic.
"""
