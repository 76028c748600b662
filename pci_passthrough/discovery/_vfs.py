"""Reading the VFs of one PF, through its virtfnN links.

A VF is listed only when its virtfnN link points at the address the
kernel computes from the PF's sriov_offset and sriov_stride and no other
link reaches it.  What may differ from its PF (numa_node, driver,
iommu_group) is read per VF; the loop over the VFs is the scan's hot
path, its reads inlined.
"""

import os
import stat

from pci_passthrough.discovery import _values as values
from pci_passthrough.discovery import sysfs_files
from pci_passthrough.discovery._state import BAD, PfFound, ScanState
from pci_passthrough.discovery.sysfs_files import LinkProblem
from pci_passthrough.model.pci_address import address_sort_key


def scan_vfs(scan: ScanState, pf: PfFound, path: str, rel: str, up: str,
             entries: dict[str, os.DirEntry[str]],
             drivers: dict[str, str]) -> None:
    links = []
    for name, entry in entries.items():
        if name.startswith("virtfn"):
            index = values.canonical_index(name[6:])
            if index is None or index > values.MAX_U16:
                scan.problem(f"{path}/{name}", "unexpected entry; "
                             "expected virtfn<N>, N a VF index 0-65535")
            else:
                links.append((index, name, entry))
    if not links:
        return
    links.sort()
    get = entries.get
    unlisted = "its VFs are not listed"
    vf_product = scan.value(path + "/sriov_vf_device",
                            get("sriov_vf_device"),
                            values.vf_device_id, True, unlisted)
    offset = scan.value(path + "/sriov_offset", get("sriov_offset"),
                        values.count, True, unlisted)
    stride = scan.value(path + "/sriov_stride", get("sriov_stride"),
                        values.count, True, unlisted)
    if offset == 0:
        scan.problem(path + "/sriov_offset", "0: the first VF would be "
                     "the PF itself; expected an offset of 1 or more; "
                     + unlisted)
        offset = BAD
    if stride == 0 and len(links) > 1:
        scan.problem(path + "/sriov_stride", "0 with several VFs: they "
                     "would share one address; expected 1 or more; "
                     + unlisted)
        stride = BAD
    computed = isinstance(offset, int) and isinstance(stride, int)
    offset_n = offset if isinstance(offset, int) else 0
    stride_n = stride if isinstance(stride, int) else 0
    pf.vfs_listed = (pf.listed and computed
                     and isinstance(vf_product, str))
    if isinstance(vf_product, str):
        pf.vf_product = vf_product
    _domain, bus, slot, func = address_sort_key(pf.address)
    first = (bus << 8 | slot << 3 | func) + offset_n
    dom = pf.address[:pf.address.index(":")]
    parent, _, _ = path.rpartition("/")
    parent_rel = rel.rpartition("/")[0]
    dirs = scan.listing(parent)
    if dirs is None:
        pf.vfs_listed = False
        return
    has_numa = "numa_node" in entries
    drivers_prefix = up + "bus/pci/drivers/"
    groups_prefix = up + "kernel/iommu_groups/"
    numa_values = scan.numa_values
    vf_links = scan.vf_links
    vf_parents = scan.vf_parents
    rows = pf.vfs
    readlink, lstat, regular = os.readlink, os.lstat, stat.S_ISREG
    os_open, os_read, os_close = os.open, os.read, os.close
    o_read, max_read = sysfs_files.O_READ, sysfs_files.MAX_READ
    groups_len = len(groups_prefix)
    for index, name, entry in links:
        link = f"{path}/{name}"
        if not entry.is_symlink():
            scan.problem(link, f"{sysfs_files.entry_kind(entry)}; expected a "
                               f"symbolic link ../<VF address>")
            continue
        try:
            text = readlink(link)
        except OSError as exc:
            scan.problem(link, f"cannot be read ({exc.strerror}); "
                               f"expected a symbolic link ../<VF address>")
            continue
        if computed:
            vf_rid = first + stride_n * index
            if vf_rid > values.MAX_U16:
                scan.problem(link, f"VF {index} by sriov_offset "
                                   f"{offset_n} and sriov_stride "
                                   f"{stride_n} is "
                                   f"beyond bus ff; expected VFs on "
                                   f"buses up to ff")
                continue
            address = (f"{dom}:{vf_rid >> 8:02x}:{vf_rid >> 3 & 31:02x}"
                       f".{vf_rid & 7}")
            if text != "../" + address:
                scan.problem(link, _misdirected(
                    text, pf.address, address, index, offset_n,
                    stride_n))
                continue
        else:
            # The VFs will not be listed, but their own problems are.
            address = text[3:]
            if not (text.startswith("../")
                    and values.ADDRESS.match(address)):
                scan.problem(link, f"-> {text!r}; expected ../<VF "
                                   f"address>; not followed")
                continue
        if address in vf_links:
            scan.problem(link, f"reaches VF {address}, as "
                               f"{vf_links[address]} does; expected "
                               f"one link per VF; neither is listed")
            scan.duplicates.add(address)
            continue
        vf_links[address] = link
        vf_path = f"{parent}/{address}"
        is_dir = dirs.get(address)
        if not is_dir:
            scan.problem(vf_path, f"{name} of PF {pf.address} points "
                         f"here, but it is "
                         + ("not a directory" if is_dir is False
                            else "missing (the VF vanished)")
                         + "; expected the VF's directory")
            continue
        # The hot path: what follows runs once per VF, inlined.
        bad = False
        numa = None
        if has_numa:
            file = vf_path + "/numa_node"
            try:
                mode = lstat(file).st_mode
                if regular(mode):
                    fd = os_open(file, o_read)
                    try:
                        data = os_read(fd, max_read)
                    finally:
                        os_close(fd)
                    try:
                        numa = numa_values[data]
                    except KeyError:
                        try:
                            numa = values.numa_node(data)
                        except ValueError as exc:
                            scan.problem(
                                file, f"read {sysfs_files.shown(data)}; "
                                      f"expected {exc}")
                            bad = True
                        else:
                            numa_values[data] = numa
                else:
                    scan.problem(file, f"{sysfs_files.kind(mode)}, expected a "
                                       f"regular file; not opened")
                    bad = True
            except OSError as exc:
                scan.problem(file, f"cannot be read ({exc.strerror}); "
                                   f"expected as on its PF")
                bad = True
        driver = group = None
        file = vf_path + "/driver"
        try:
            driver = drivers[readlink(file)]
        except FileNotFoundError:
            pass
        except (KeyError, OSError):
            try:
                driver = sysfs_files.driver_name(file, drivers_prefix, drivers)
            except LinkProblem as problem:
                scan.problem(problem.path, problem.reason)
                bad = True
        file = vf_path + "/iommu_group"
        try:
            text = readlink(file)
            number = text[groups_len:]
            if (text.startswith(groups_prefix) and number.isdigit()
                    and number.isascii() and len(number) < 10
                    and (number[0] != "0" or number == "0")):
                group = int(number)
            else:
                raise LinkProblem(file, "")
        except FileNotFoundError:
            pass
        except (OSError, LinkProblem):
            try:
                group = sysfs_files.iommu_group(file, groups_prefix)
            except LinkProblem as problem:
                scan.problem(problem.path, problem.reason)
                bad = True
        if not bad:
            rows.append((address, numa, driver, group, index, link))
            vf_parents[address] = parent_rel

def _misdirected(text: str, pf: str, address: str, index: int,
                 offset: int, stride: int) -> str:
    """Why a virtfnN link's ``text`` is not the ../``address`` the PF's
    sriov_offset and sriov_stride give."""
    if text == "../" + pf:
        what = " (the PF itself)"
    elif text.startswith("../") and values.ADDRESS.match(text[3:]):
        what = " (another device)"
    else:
        what = ""
    return (f"-> {text!r}{what}; expected ../{address}, VF {index} "
            f"by the PF's sriov_offset {offset} and sriov_stride "
            f"{stride}; not followed")
