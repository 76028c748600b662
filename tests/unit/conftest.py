"""Fixtures shared by the unit tests."""

from collections.abc import Iterator

import libvirt
import pytest
from cli_host import SHARED_URI


@pytest.fixture
def libvirt_conn() -> Iterator[libvirt.virConnect]:
    """A connection to test:///default held open for the test, so that
    the command's own connections share its state: the test sees and
    makes the networks the command sees."""
    conn = libvirt.open(SHARED_URI)
    yield conn
    conn.close()
