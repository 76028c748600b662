"""The whole ``[pci_passthrough]`` configuration, validated in one place.

:func:`load_settings` reads every option of the group (the network
drivers' options included), parses device_spec and flavor, checks the
other options, and returns a frozen :class:`HostSettings`.  HostAgent and
every ``pci-passthrough`` command go through it, so an option is checked
identically wherever it is used, and before anything on the host is
touched.  Whatever is wrong, the caller gets one
:class:`~pci_passthrough.exception.ConfigError` naming the option, the
entry and what was expected: oslo.config's own errors (a value its type
refuses, a ``$reference`` to nothing, a reference loop) are wrapped the
same way.

:func:`parse_command_line` is the command line's counterpart: it parses
the command line and the configuration files through oslo.config and turns
a file that cannot be read (not UTF-8, not an INI file, a FIFO or device
that would block or never end, missing, unreadable) into one
:class:`~pci_passthrough.exception.ConfigFileError` naming the file.
"""

import dataclasses
import glob
import os
import re
import stat
import types
from collections.abc import Mapping, Sequence
from typing import Any

from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.config import _json as config_json
from pci_passthrough.config import opts
from pci_passthrough.config.devspec import DeviceSpecList, parse_device_specs
from pci_passthrough.config.flavors import FlavorSet, parse_flavors

GROUP = opts.GROUP
#: Longest path accepted (Linux PATH_MAX is 4096 with the NUL).
MAX_PATH_CHARS = 4095
#: Largest configuration file parse_command_line() lets oslo.config read.
MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024
_DRIVER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z", re.ASCII)
_MAX_URI_CHARS = 1024
# Options with a field of their own in HostSettings.
_KNOWN = frozenset({
    "sysfs_root", "device_spec", "flavor", "special_attributes",
    "state_path", "network_driver", "network_name_prefix", "libvirt_uri",
    "macvtap_mode", "incoming_migration_timeout", "netdev_writes",
    "physnet_flavors",
    # Read by the Placement reporter (pci_passthrough.placement.conf).
    "nodename"})


@dataclasses.dataclass(frozen=True, slots=True)
class HostSettings:
    """The validated ``[pci_passthrough]`` options of one host."""

    sysfs_root: str
    device_specs: DeviceSpecList
    #: The flavors, with the special attributes.
    flavors: FlavorSet
    state_path: str
    network_driver: str
    network_name_prefix: str
    #: The libvirt_macvtap driver's options; None when that driver is not
    #: installed (its options are then not registered).
    libvirt_uri: str | None
    macvtap_mode: str | None
    #: Seconds an incoming migration's lease lasts (oslo.config checked
    #: it is at least 1).
    incoming_migration_timeout: int
    #: How VF netdev states are written back: auto, direct or privsep.
    netdev_writes: str
    #: Options of other installed network drivers, by name, as
    #: oslo.config typed them.
    driver_options: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))
    #: Physical network -> the flavor of the macvtap ports on it.
    physnet_flavors: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}))

    @property
    def special_attributes(self) -> frozenset[str]:
        return self.flavors.special_attributes


def load_settings(conf: cfg.ConfigOpts) -> HostSettings:
    """Every ``[pci_passthrough]`` option of ``conf``, validated.

    :param conf: a ConfigOpts on which
        :func:`pci_passthrough.config.opts.register_opts` was called and which
        has been parsed.
    :raises ConfigError: (a subclass) naming the option, the entry and
        what was expected.
    """
    values = _read_group(conf)
    specs = parse_device_specs(values["device_spec"], group=GROUP)
    flavors = parse_flavors(values["flavor"], known_tags=specs.tag_names,
                            special_attributes=values["special_attributes"],
                            group=GROUP)
    return HostSettings(
        sysfs_root=_path(values, "sysfs_root"),
        device_specs=specs,
        flavors=flavors,
        state_path=_path(values, "state_path"),
        network_driver=_driver_name(values["network_driver"]),
        network_name_prefix=check_network_name_prefix(
            values["network_name_prefix"]),
        libvirt_uri=_libvirt_uri(values.get("libvirt_uri")),
        macvtap_mode=_macvtap_mode(values.get("macvtap_mode")),
        incoming_migration_timeout=values["incoming_migration_timeout"],
        netdev_writes=check_netdev_writes(values["netdev_writes"]),
        driver_options=types.MappingProxyType(
            {k: v for k, v in values.items() if k not in _KNOWN}),
        physnet_flavors=types.MappingProxyType(
            check_physnet_flavors(values["physnet_flavors"], flavors)),
    )


def check_network_name_prefix(value: object) -> str:
    """``value`` when it can start the per-instance network names.

    The names are ``<prefix><canonical uuid>-<port index>`` and must stay
    valid libvirt network names (kept in ``<name>.xml`` files) that a
    shell and virsh take as one word.

    :raises InvalidOption: naming the option and what was expected.
    """
    if not isinstance(value, str) or not re.fullmatch(
            opts.NETWORK_NAME_PREFIX_REGEX, value):
        raise _invalid("network_name_prefix", value,
                       opts.NETWORK_NAME_PREFIX_EXPECTED)
    return value


def check_physnet_flavors(value: object, flavors: FlavorSet
                          ) -> dict[str, str]:
    """``value`` when it maps physical networks to configured flavors.

    :raises InvalidOption: naming the entry and what was expected.
    """
    if not isinstance(value, Mapping):
        raise _invalid("physnet_flavors", value, "physnet:flavor pairs")
    for physnet, flavor in value.items():
        entry = f"{physnet}:{flavor}"
        if not isinstance(physnet, str) or not physnet or \
                len(physnet) > 255 or not physnet.isprintable():
            raise _invalid("physnet_flavors", entry,
                           "a physical network name of 1 to 255 "
                           "printable characters before ':'")
        if not isinstance(flavor, str) or flavor not in flavors.flavors:
            known = ", ".join(sorted(flavors.flavors)) or "none"
            raise _invalid("physnet_flavors", entry,
                           f"a flavor the option flavor defines after "
                           f"':' (known: {known})")
    return dict(value)


def check_macvtap_mode(value: object) -> str:
    """``value`` when it is a forward mode of the libvirt_macvtap driver.

    :raises InvalidOption: naming the option and the modes.
    """
    if not isinstance(value, str) or value not in opts.MACVTAP_MODES:
        raise _invalid("macvtap_mode", value,
                       f"one of {', '.join(opts.MACVTAP_MODES)}")
    return value


def check_netdev_writes(value: object) -> str:
    """``value`` when it says how netdev writes are made.

    :raises InvalidOption: naming the option and the choices.
    """
    if not isinstance(value, str) or value not in opts.NETDEV_WRITES:
        raise _invalid("netdev_writes", value,
                       "one of " + ", ".join(opts.NETDEV_WRITES)
                       + " (auto: directly with CAP_NET_ADMIN, else "
                         "through privsep)")
    return value


# -- reading the options --------------------------------------------------

def _read_group(conf: cfg.ConfigOpts) -> dict[str, Any]:
    try:
        group = conf[GROUP]
        names = sorted(group)
    except (cfg.NoSuchGroupError, cfg.NoSuchOptError):
        raise exception.InvalidOption(
            group=GROUP, option="-", entry="-",
            reason="the options are not registered; call "
                   "pci_passthrough.config.opts.register_opts(conf) before "
                   "parsing") from None
    values = {}
    for name in names:
        try:
            values[name] = group[name]
        except (cfg.Error, ValueError, RecursionError) as exc:
            raise _unreadable(name, exc) from None
    missing = sorted((_KNOWN - {"libvirt_uri", "macvtap_mode", "nodename"})
                     - set(values))
    if missing:
        raise exception.InvalidOption(
            group=GROUP, option=missing[0], entry="-",
            reason="the option is not registered; call "
                   "pci_passthrough.config.opts.register_opts(conf)")
    return values


def _unreadable(name: str, exc: BaseException) -> exception.ConfigError:
    """oslo.config's error on reading an option, as a ConfigError."""
    text = str(exc)
    where = re.search(r"detail='([^']*)'", text)
    entry = f"in {where.group(1)}" if where else "given"
    if isinstance(exc, RecursionError):
        reason = ("its $references form a loop; expected a value or a "
                  "reference to another option's value")
    elif isinstance(exc, cfg.TemplateSubstitutionError | cfg.NoSuchOptError
                    | cfg.NoSuchGroupError):
        reason = (f"{text}; a '$' starts a reference to another option "
                  f"(write '$$' for a literal '$')")
    else:
        reason = text.split(" is not valid: ", 1)[-1]
        if name == "network_name_prefix":
            reason += f"; expected {opts.NETWORK_NAME_PREFIX_EXPECTED}"
    return exception.InvalidOption(group=GROUP, option=name,
                                   entry=config_json.shorten(entry),
                                   reason=config_json.shorten(reason, 400))


def _invalid(option: str, value: object,
             expected: str) -> exception.ConfigError:
    return exception.InvalidOption(
        group=GROUP, option=option, entry=config_json.describe(value),
        reason=f"expected {expected}")


def _path(values: Mapping[str, Any], option: str) -> str:
    # Relative paths are allowed (demos and tests use them); an empty one,
    # a NUL (open() raises ValueError on it) or a control character is
    # not a path anyone meant.
    value = values[option]
    if (not isinstance(value, str) or not 0 < len(value) <= MAX_PATH_CHARS
            or not value.isprintable()):
        raise _invalid(option, value,
                       f"a path of 1 to {MAX_PATH_CHARS} printable "
                       f"characters")
    return value


def _driver_name(value: object) -> str:
    if not isinstance(value, str) or not _DRIVER_NAME.match(value):
        raise _invalid("network_driver", value,
                       "the name of an installed network driver, such as "
                       "libvirt_macvtap")
    return value


def _libvirt_uri(value: object) -> str | None:
    if value is None:
        return None
    if (not isinstance(value, str) or not 0 < len(value) <= _MAX_URI_CHARS
            or not value.isprintable() or any(c.isspace() for c in value)):
        raise _invalid("libvirt_uri", value,
                       "a libvirt connection URI such as qemu:///system")
    return value


def _macvtap_mode(value: object) -> str | None:
    return None if value is None else check_macvtap_mode(value)


# -- the command line -----------------------------------------------------

def parse_command_line(conf: cfg.ConfigOpts, args: Sequence[str],
                       **kwargs: Any) -> None:
    """``conf(args, **kwargs)``: the command line and the configuration
    files it names, parsed by oslo.config.

    Files named by ``--config-file`` and found by ``--config-dir`` (or
    the default ones) are checked to be regular files of sane size first:
    oslo.config would block on a FIFO and read a device forever.

    :raises ConfigFileError: naming the file that cannot be read or
        parsed.
    :raises cfg.Error: any other command-line error of oslo.config.
    """
    for path in _named_files(args, kwargs):
        _check_file(path)
    try:
        conf(list(args), **kwargs)
    except cfg.ConfigFileParseError as exc:
        raise exception.ConfigFileError(
            path=exc.config_file,
            reason=f"{exc.msg}; expected an INI file of [section] "
                   f"headers and 'option = value' lines") from None
    except (cfg.ConfigFilesNotFoundError,
            cfg.ConfigFilesPermissionDeniedError) as exc:
        missing = isinstance(exc, cfg.ConfigFilesNotFoundError)
        raise exception.ConfigFileError(
            path=", ".join(exc.config_files),
            reason="no such file" if missing else
            "permission denied") from None
    except cfg.ConfigDirNotFoundError as exc:
        raise exception.ConfigFileError(
            path=exc.config_dir, reason="no such directory") from None
    except UnicodeDecodeError as exc:
        raise exception.ConfigFileError(
            path=_file_being_parsed(exc),
            reason=f"byte {exc.object[exc.start]:#04x} is not UTF-8 text; "
                   f"expected a UTF-8 file") from None
    except OSError as exc:
        raise exception.ConfigFileError(
            path=exc.filename or "-",
            reason=exc.strerror or str(exc)) from None


def _named_files(args: Sequence[str], kwargs: Mapping[str, Any]
                 ) -> list[str]:
    """The configuration files oslo.config will open, as it finds them
    (exact option spellings only; the rest is left to oslo.config)."""
    files: list[str] = []
    dirs: list[str] = []
    named_files = named_dirs = False
    it = iter(args)
    for arg in it:
        if arg == "--":
            break
        for flag, bucket in (("--config-file", files),
                             ("--config-dir", dirs)):
            if arg == flag:
                bucket.append(next(it, ""))
            elif arg.startswith(flag + "="):
                bucket.append(arg.split("=", 1)[1])
            else:
                continue
            named_files |= bucket is files
            named_dirs |= bucket is dirs
    if not named_files:
        files.extend(kwargs.get("default_config_files") or ())
    if not named_dirs:
        dirs.extend(kwargs.get("default_config_dirs") or ())
    for folder in dirs:
        if os.path.isdir(folder):
            files.extend(sorted(glob.glob(os.path.join(
                glob.escape(folder), "*.conf"))))
    return files


def _check_file(path: str) -> None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return  # missing or unreadable: oslo.config says so
    if not stat.S_ISREG(info.st_mode) and not _is_devnull(info):
        raise exception.ConfigFileError(
            path=config_json.shorten(path, 200),
            reason="not a regular file (a FIFO, socket, device or "
                   "directory); expected a configuration file")
    if info.st_size > MAX_CONFIG_FILE_BYTES:
        raise exception.ConfigFileError(
            path=config_json.shorten(path, 200),
            reason=f"{info.st_size} bytes; expected at most "
                   f"{MAX_CONFIG_FILE_BYTES}")


def _is_devnull(info: os.stat_result) -> bool:
    # "--config-file /dev/null" is the usual way to say "no file".
    try:
        null = os.stat(os.devnull)
    except OSError:
        return False
    return (stat.S_ISCHR(info.st_mode) and info.st_rdev == null.st_rdev)


def _file_being_parsed(exc: BaseException) -> str:
    """The file oslo.config was reading when ``exc`` was raised (its
    decoding errors do not say)."""
    tb = exc.__traceback__
    path = "-"
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("config_file")
        if isinstance(candidate, str):
            path = candidate
        tb = tb.tb_next
    return config_json.shorten(path, 200)
