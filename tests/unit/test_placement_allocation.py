"""A Placement allocation checked against this host's tree."""

import pytest

from pci_passthrough import exception
from pci_passthrough.placement.allocation import port_providers
from pci_passthrough.placement.tree import PciProvider, ProviderTree

INSTANCE = "11111111-1111-4111-8111-111111111111"
A = PciProvider("cmp1_0000:3B:00.0", "0000:3b:00.0", "CUSTOM_X",
                frozenset(), ("0000:3b:02.0", "0000:3b:02.1"))
B = PciProvider("cmp1_0000:5E:00.0", "0000:5e:00.0", "CUSTOM_Y",
                frozenset(), ("0000:5e:00.2",))
TREE = ProviderTree("cmp1", (A, B))
UUIDS = {A.name: "uuid-a", B.name: "uuid-b"}


def test_each_port_gets_its_allocated_provider() -> None:
    assert port_providers(TREE, INSTANCE, UUIDS,
                          ["uuid-b", "uuid-a", "uuid-a"]) == [B, A, A]


@pytest.mark.parametrize(("per_port", "reason"), [
    (["uuid-a", "uuid-other"], "port 1 was allocated on provider "
                               "uuid-other, which is not one of this "
                               "host's (cmp1) PF providers"),
    (["uuid-b", "uuid-b"], "2 ports were allocated on cmp1_0000:5E:00.0, "
                           "which has 1 usable VFs"),
])
def test_an_allocation_that_does_not_fit_is_refused(per_port,
                                                    reason) -> None:
    with pytest.raises(exception.AllocationMismatch) as err:
        port_providers(TREE, INSTANCE, UUIDS, per_port)
    assert str(err.value) == (
        f"The Placement allocation for instance {INSTANCE} does not fit "
        f"this host: {reason}. Nothing was claimed.")
