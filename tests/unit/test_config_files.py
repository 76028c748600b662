"""Configuration files oslo.config cannot read: one clear error naming the
file, from the library and from the command line, never a traceback and
never a hang."""

import os

import pytest
from config_strategies import profile
from hypothesis import given
from hypothesis import strategies as st
from oslo_config import cfg

from pci_passthrough import exception
from pci_passthrough.cli import main
from pci_passthrough.config import opts, settings

HEAD = b"[pci_passthrough]\n"


def parse(args):
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    settings.parse_command_line(conf, args, default_config_files=[],
                                default_config_dirs=[])
    return conf


def refused(args, path, reason):
    with pytest.raises(exception.ConfigFileError) as err:
        parse(args)
    text = str(err.value)
    assert text.startswith(f"Cannot read configuration file {path}: "), text
    assert reason in text and "\n" not in text, text
    return text


@pytest.mark.parametrize("content", [
    HEAD + b"sysfs_root = /s\xff\n",
    HEAD + b"sysfs_root = /caf\xe9\n",                # latin-1
    HEAD + b"# comment \x80\n",
    b"[pci_passthrough\xfe]\n",
    HEAD + b"device_spec = {\"group\": \"\xc3\"}\n",   # cut UTF-8
    HEAD + b"\xed\xa0\x80 = 1\n",                     # encoded surrogate
    b"\xff\xfe[\x00p\x00c\x00i\x00]\x00\n\x00",        # UTF-16
    HEAD + b"x = 1\n" * 10000 + b"\xc0\xaf\n",          # overlong, far in
])
def test_non_utf8_bytes(tmp_path, content):
    path = tmp_path / "pci.conf"
    path.write_bytes(content)
    refused(["--config-file", str(path)], path,
            "is not UTF-8 text; expected a UTF-8 file")


@pytest.mark.parametrize("content,reason", [
    (b"[pci_passthrough\nsysfs_root = /s\n", "Invalid section"),
    (HEAD + b"  indented = 1\n", "Unexpected continuation line"),
    (HEAD + b"novalue\n", "No ':' or '=' found"),
    (b"sysfs_root = /s\n", "Section must be started"),
    (b"\xef\xbb\xbf[pci_passthrough]\n", "No ':' or '=' found"),
    (HEAD + b"[]\n", "Empty section name"),
])
def test_files_that_are_not_ini(tmp_path, content, reason):
    path = tmp_path / "pci.conf"
    path.write_bytes(content)
    text = refused(["--config-file", str(path)], path, reason)
    assert "expected an INI file" in text


def test_a_fifo_is_refused_before_oslo_blocks_on_it(tmp_path):
    fifo = tmp_path / "pci.conf"
    os.mkfifo(fifo)
    refused(["--config-file", str(fifo)], fifo, "not a regular file")


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused_before_oslo_reads_it_for_ever(path):
    refused([f"--config-file={path}"], path, "not a regular file")


def test_a_directory_given_as_file(tmp_path):
    refused(["--config-file", str(tmp_path)], tmp_path, "not a regular")


def test_dev_null_is_the_usual_empty_file():
    conf = parse(["--config-file", os.devnull])
    assert conf.pci_passthrough.sysfs_root == "/sys"


def test_an_enormous_file(tmp_path):
    path = tmp_path / "pci.conf"
    with path.open("wb") as f:
        f.truncate(settings.MAX_CONFIG_FILE_BYTES + 1)
    refused(["--config-file", str(path)], path, "bytes; expected at most")


def test_missing_file_and_directory(tmp_path):
    refused(["--config-file", str(tmp_path / "no.conf")],
            tmp_path / "no.conf", "no such file")
    refused(["--config-dir", str(tmp_path / "no.d")], tmp_path / "no.d",
            "no such directory")


def test_a_bad_file_inside_a_config_dir_is_named(tmp_path):
    folder = tmp_path / "pci.d"
    folder.mkdir()
    (folder / "10-ok.conf").write_bytes(HEAD + b"sysfs_root = /s\n")
    (folder / "20-bad.conf").write_bytes(HEAD + b"x = \xff\n")
    (folder / "30-ignored.txt").write_bytes(b"\xff")
    refused(["--config-dir", str(folder)], folder / "20-bad.conf",
            "is not UTF-8")
    (folder / "20-bad.conf").unlink()
    os.mkfifo(folder / "25-fifo.conf")
    refused(["--config-dir", str(folder)], folder / "25-fifo.conf",
            "not a regular file")


def test_default_config_files_are_checked_too(tmp_path):
    path = tmp_path / "pci.conf"
    path.write_bytes(HEAD + b"x = \xff\n")
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    with pytest.raises(exception.ConfigFileError, match="not UTF-8"):
        settings.parse_command_line(conf, [],
                                    default_config_files=[str(path)],
                                    default_config_dirs=[])


@pytest.mark.parametrize("make,reason", [
    (lambda p: p.write_bytes(HEAD + b"sysfs_root = /s\xff\n"),
     "is not UTF-8"),
    (lambda p: p.write_bytes(b"[pci_passthrough\n"), "Invalid section"),
    (lambda p: os.mkfifo(p), "not a regular file"),
    (lambda p: p.mkdir(), "not a regular file"),
    (lambda p: None, "no such file"),
])
def test_the_command_line_prints_one_line_and_exits_2(tmp_path, capsys,
                                                      make, reason):
    path = tmp_path / "pci.conf"
    make(path)
    assert main.main(["--config-file", str(path), "scan"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"pci-passthrough: error: Cannot read configuration file {path}")
    assert reason in err and err.count("\n") == 1


# -- whatever else: hypothesis -------------------------------------------

OPTIONS = ["sysfs_root", "state_path", "device_spec", "flavor",
           "special_attributes", "network_driver", "network_name_prefix",
           "macvtap_mode", "libvirt_uri"]


def _read(tmp_path, content: bytes) -> None:
    path = tmp_path / "fuzz.conf"
    path.write_bytes(content)
    try:
        settings.load_settings(parse(["--config-file", str(path)]))
    except exception.ConfigError as err:
        text = str(err)
        assert "\n" not in text and text.isprintable(), text


@profile(150)
@given(st.binary(max_size=200))
def test_any_bytes_after_the_header(tmp_path_factory, tail):
    _read(tmp_path_factory.mktemp("f"), HEAD + tail)


@profile(300)
@given(st.sampled_from(OPTIONS),
       st.text(st.characters(blacklist_categories=["Cs"]), max_size=60))
def test_any_value_of_any_option(tmp_path_factory, option, value):
    content = f"[pci_passthrough]\n{option} = {value}\n".encode()
    _read(tmp_path_factory.mktemp("f"), content)
