"""Restores through oslo.privsep: the option that chooses how netdev
writes are made, the capability check behind ``auto``, the msgpack
request and reply of the privileged entrypoint, and the privileged
side's refusal of anything malformed.  No root: the daemon itself runs
in tests/functional/test_privsep_real.py."""

import dataclasses
import os
from typing import Any

import msgpack
import pytest
from config_strategies import profile
from hypothesis import example, given
from hypothesis import strategies as hst
from oslo_config import cfg
from oslo_privsep import capabilities
from oslo_utils import importutils
from test_netdev_state import STATE, states, unicast_macs

from pci_passthrough import exception, privsep
from pci_passthrough.config import opts, settings
from pci_passthrough.hygiene import (
    NetdevState,
    RestoreStep,
    StepKind,
    from_doc,
    plan_netdev_steps,
    plan_vf_steps,
    privileged,
    to_doc,
)
from pci_passthrough.hygiene.access import (
    NetlinkAccess,
    PrivsepNetlinkAccess,
    effective_capabilities,
    has_cap_net_admin,
    netlink_access,
)

SEEDED = profile(150)
NET_ADMIN = 1 << capabilities.CAP_NET_ADMIN


def wire(value: object) -> Any:
    """``value`` after a trip over a privsep socket (oslo_privsep.comm's
    msgpack settings)."""
    return msgpack.unpackb(
        msgpack.packb(value, use_bin_type=True,
                      unicode_errors="surrogateescape"),
        use_list=False, raw=False, strict_map_key=False,
        unicode_errors="surrogateescape")


# -- the option ----------------------------------------------------------

def parsed(tmp_path, *lines: str) -> cfg.ConfigOpts:
    path = tmp_path / "pci.conf"
    path.write_text("[pci_passthrough]\n" + "\n".join(lines) + "\n")
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    settings.parse_command_line(conf, ["--config-file", str(path)],
                                default_config_files=[],
                                default_config_dirs=[])
    return conf


@pytest.mark.parametrize(("lines", "expected"), [
    ((), "auto"),
    (("netdev_writes = direct",), "direct"),
    (("netdev_writes = privsep",), "privsep"),
])
def test_netdev_writes_is_read(tmp_path, lines, expected) -> None:
    assert settings.load_settings(
        parsed(tmp_path, *lines)).netdev_writes == expected


@pytest.mark.parametrize("value", ["sudo", "Privsep", "", "auto,direct"])
def test_a_bad_netdev_writes_names_the_option(tmp_path, value) -> None:
    conf = parsed(tmp_path, f"netdev_writes = {value}")
    with pytest.raises(exception.ConfigError) as info:
        settings.load_settings(conf)
    text = str(info.value)
    assert "[pci_passthrough] netdev_writes" in text
    assert "auto, direct, privsep" in text, text


@SEEDED
@given(hst.sampled_from(opts.NETDEV_WRITES) | hst.text(max_size=12)
       | hst.none() | hst.integers() | hst.binary(max_size=8))
def test_check_netdev_writes_accepts_the_choices_only(value) -> None:
    try:
        got = settings.check_netdev_writes(value)
    except exception.InvalidOption as exc:
        assert value not in opts.NETDEV_WRITES
        assert "[pci_passthrough] netdev_writes" in str(exc)
        assert "one of auto, direct, privsep" in str(exc)
    else:
        assert got == value and value in opts.NETDEV_WRITES


def test_set_defaults_changes_netdev_writes() -> None:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    opts.set_defaults(conf, netdev_writes="privsep")
    conf([])
    assert conf.pci_passthrough.netdev_writes == "privsep"


def test_privileged_opts_are_oslo_privsep_s_own() -> None:
    # Registered on a second ConfigOpts, and then by oslo.privsep itself
    # (as PrivContext does on cfg.CONF), without a duplicate-option
    # error: they are the same objects.
    conf = cfg.ConfigOpts()
    opts.register_privileged_opts(conf)
    opts.register_privileged_opts(conf)
    from oslo_privsep import priv_context

    conf.register_opts(priv_context.OPTS, group=opts.PRIVILEGED_GROUP)
    conf(["--config-file", os.devnull])
    group = conf[opts.PRIVILEGED_GROUP]
    assert group.helper_command is None and group.user is None


# -- the capability check behind auto -------------------------------------

def status(tmp_path, cap_eff: str | None) -> str:
    path = tmp_path / "status"
    # A process names itself with any bytes.
    lines = [b"Name:\tnova-\xff\xc3\x28", b"CapInh:\t0000000000000000",
             b"CapPrm:\t000001ffffffffff"]
    if cap_eff is not None:
        lines.append(f"CapEff:\t{cap_eff}".encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


def test_the_effective_set_is_this_process_s() -> None:
    effective, _, _ = capabilities.get_caps()
    with open("/proc/self/status", encoding="ascii") as file:
        mask = effective_capabilities(file.read())
    assert mask == sum(1 << cap for cap in effective)
    assert has_cap_net_admin() is (capabilities.CAP_NET_ADMIN in effective)


@pytest.mark.parametrize(("cap_eff", "writes", "cls"), [
    (f"{NET_ADMIN:016x}", "auto", NetlinkAccess),
    ("000001ffffffffff", "auto", NetlinkAccess),
    (f"{0x1ffffffffff & ~NET_ADMIN:016x}", "auto", PrivsepNetlinkAccess),
    ("0000000000000000", "auto", PrivsepNetlinkAccess),
    # A status the process cannot read tells nothing: privsep works
    # whether or not the process could have written.
    (None, "auto", PrivsepNetlinkAccess),
    ("not hex", "auto", PrivsepNetlinkAccess),
    ("0000000000000000", "direct", NetlinkAccess),
    ("000001ffffffffff", "privsep", PrivsepNetlinkAccess),
])
def test_netlink_access_follows_the_option(tmp_path, cap_eff, writes,
                                           cls) -> None:
    access = netlink_access(writes, status(tmp_path, cap_eff))
    assert type(access) is cls and access.netns is None


def test_a_missing_status_file_means_privsep(tmp_path) -> None:
    assert not has_cap_net_admin(str(tmp_path / "absent"))


def test_netlink_access_refuses_an_unknown_choice() -> None:
    with pytest.raises(exception.InvalidOption, match="netdev_writes"):
        netlink_access("sudo")


@SEEDED
@given(hst.text(max_size=80))
@example("CapEff:\t" + "f" * 17)
@example("CapEff:")
@example("CapEff:\t+1f")
def test_a_hostile_status_text_is_refused_with_value_error(text) -> None:
    try:
        mask = effective_capabilities(text)
    except ValueError as exc:
        assert "CapEff" in str(exc)
    else:
        assert 0 <= mask < 1 << 64


# -- the request ---------------------------------------------------------

@SEEDED
@given(states)
def test_request_round_trip_over_msgpack(state: NetdevState) -> None:
    assert from_doc(to_doc(state), "test") == state
    assert privileged.check_request(wire(to_doc(state))) == state


# What msgpack carries: integers of 64 bits at most.
msgpack_ints = hst.integers(-(1 << 63), (1 << 64) - 1)
msgpack_values = hst.recursive(
    hst.none() | hst.booleans() | msgpack_ints | hst.floats()
    | hst.text(max_size=20) | hst.binary(max_size=8),
    lambda inner: hst.lists(inner, max_size=4)
    | hst.dictionaries(hst.text(max_size=12) | msgpack_ints, inner,
                       max_size=4),
    max_leaves=12)


@SEEDED
@given(msgpack_values)
@example({})
@example(to_doc(STATE) | {"version": 2})
@example(to_doc(STATE) | {"extra": 1})
def test_a_hostile_request_is_refused_with_a_library_error(value) -> None:
    try:
        state = privileged.check_request(wire(value))
    except exception.InvalidNetdevState as exc:
        assert privileged.REQUEST in str(exc)
    except exception.InvalidNetdevName as exc:
        assert privileged.REQUEST in str(exc)
    else:  # pragma: no cover - a random value is never a whole request
        assert to_doc(state) == value


_FIELDS = ("version", "netdev", "mac", "mtu", "up", "vf", "vf.pf",
           "vf.index", "vf.mac", "vf.vlan", "vf.qos", "vf.vlan_proto",
           "vf.spoof_check", "vf.trust")


@SEEDED
@given(hst.sampled_from(_FIELDS), msgpack_values)
def test_a_replaced_field_is_named(field: str, value: object) -> None:
    doc = to_doc(STATE)
    target = doc["vf"] if field.startswith("vf.") else doc
    target[field.removeprefix("vf.")] = value
    try:
        state = privileged.check_request(wire(doc))
    except exception.InvalidNetdevName as exc:
        assert field == "netdev"
        assert privileged.REQUEST in str(exc)
    except exception.InvalidNetdevState as exc:
        assert exc.kwargs["field"].startswith((field, "'")), str(exc)
    else:
        # The random value happened to be a valid one for the field.
        assert privileged.check_request(wire(to_doc(state))) == state


@pytest.mark.parametrize("name", [
    "../etc", "a b", "", "x" * 16, "eth0:1", ".", b"eth0", 7, None,
    "eth0\n", "\udcff"])
def test_a_malformed_netdev_name_is_refused_first(name) -> None:
    doc = to_doc(STATE) | {"netdev": name}
    with pytest.raises(exception.InvalidNetdevName) as info:
        privileged.check_request(wire(doc))
    assert "expected 1 to 15 printable ASCII" in str(info.value)
    assert privileged.REQUEST in str(info.value)


# -- the reply -----------------------------------------------------------

@SEEDED
@given(states, states)
def test_reply_round_trip_over_msgpack(journal, current) -> None:
    current = dataclasses.replace(current, netdev=journal.netdev, vf=(
        None if journal.vf is None or current.vf is None else
        dataclasses.replace(current.vf, pf=journal.vf.pf,
                            index=journal.vf.index)))
    steps = plan_vf_steps(journal, current) + plan_netdev_steps(
        journal, current)
    reply = wire(privileged.steps_to_reply(steps))
    assert privileged.steps_from_reply(reply, journal.netdev) == steps


@pytest.mark.parametrize("reply", [
    None, "MAC", {"MAC": "02:00:00:00:00:01"}, [["MAC"]],
    [["NOPE", 1]], [[1, 1]], [["MAC", "02:00:00:00:00:0G"]],
    [["MAC", "01:00:5e:00:00:01"]], [["MTU", "1500"]], [["MTU", True]],
    [["VF_VLAN", [1, 2]]], [["VF_VLAN", [1, 2, "3"]]],
    [["ADMIN_STATE", 1]], [["MTU", 1500]] * 9,
])
def test_a_malformed_reply_is_refused(reply) -> None:
    with pytest.raises(exception.NetdevStateError) as info:
        privileged.steps_from_reply(wire(reply), "vfa0")
    assert "vfa0" in str(info.value)
    assert "privsep daemon's reply" in str(info.value)


@SEEDED
@given(msgpack_values, unicast_macs)
def test_a_hostile_reply_never_escapes_as_another_error(reply, mac) -> None:
    try:
        steps = privileged.steps_from_reply(wire(reply), "vfa0")
    except exception.NetdevStateError:
        return
    assert all(isinstance(s, RestoreStep) for s in steps)
    assert privileged.steps_from_reply(
        wire([["MAC", mac]]), "vfa0") == (RestoreStep(StepKind.MAC, mac),)


# -- the context ---------------------------------------------------------

def test_the_context_is_found_by_its_path_and_keeps_net_admin_only():
    context = privsep.context
    assert importutils.import_class(context.pypath) is context
    assert context.pypath == "pci_passthrough.privsep.context"
    assert context.is_entrypoint(privileged.restore_netdev_state)
    # A daemon that stops answering is given up on (tested hung for real
    # in tests/functional/test_privsep_real.py).
    assert context.timeout == privsep.RESTORE_TIMEOUT == 30.0
    # The options oslo.privsep registered on the global configuration,
    # read only: a consuming service parses them there.
    assert cfg.CONF[opts.PRIVILEGED_GROUP].capabilities == [
        capabilities.CAP_NET_ADMIN]
    # What a rootwrap filter or sudoers entry must allow.
    assert context.helper_command("/run/x/privsep.sock")[-4:] == [
        "--privsep_context", "pci_passthrough.privsep.context",
        "--privsep_sock_path", "/run/x/privsep.sock"]


def test_a_daemon_that_cannot_start_is_a_netdev_error_naming_the_fix():
    # A real helper that fails, as sudo does when no rule allows it.
    cfg.CONF.set_override("helper_command", "false",
                          group=opts.PRIVILEGED_GROUP)
    try:
        with pytest.raises(exception.NetdevStateError) as info:
            PrivsepNetlinkAccess().restore(STATE)
    finally:
        cfg.CONF.clear_override("helper_command",
                                group=opts.PRIVILEGED_GROUP)
        privsep.context.stop()
    text = str(info.value)
    assert "netdev ens1f0v3 through the privsep daemon" in text
    assert "helper_command" in text and "exited non-zero" in text
